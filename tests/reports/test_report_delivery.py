"""The weekly report reaches owners and admins by email (aiosmtpd), and delivery trouble is visible, never lost.

Real services: an SMTP server (aiosmtpd) on a free port, S3 (moto's server),
SQLite. The asset tests materialize ``executive_report`` in-process on a
Dagster instance, over one partition or a range of them.
"""

import email
import urllib.request
from email.policy import default as default_policy
from urllib.parse import parse_qs, urlsplit

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize

from eclipse_exports.assets import executive_report
from eclipse_exports.delivery.email import attachment_fits, build_report_email, encoded_attachment_bytes
from eclipse_exports.delivery.smtp import parse_smtp_url
from eclipse_exports.local.services import free_port
from eclipse_exports.models import utc_now
from eclipse_exports.reports.weekly import (
    DeliveryStatus,
    MailSettings,
    ReportWeek,
    deliver_weekly_report,
    publish_weekly_report,
)
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, SmtpResource, SourceDatabaseResource
from tests.delivery.test_delivery import start_smtp  # noqa: F401 - the aiosmtpd fixture
from tests.report_dataset import RECIPIENTS, WEEK_2

WEEK = ReportWeek(WEEK_2)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ASKED = {"eclipse/email": "true"}  # a materialization a person asked to mail
BY_SCHEDULE = {"dagster/schedule_name": "executive_report_schedule"}


def _smtp(server) -> str:
    return f"smtp://{server.host}:{server.port}"


def _object(storage, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def test_each_owner_and_admin_gets_one_message_with_the_report_attached(report_sqlite, storage, start_smtp):  # noqa: F811
    server = start_smtp()
    report = publish_weekly_report(report_sqlite, storage, "ws_north", WEEK, utc_now())
    outcome = deliver_weekly_report(report_sqlite, storage, report, MailSettings(parse_smtp_url(_smtp(server))),
                                    utc_now())
    assert (outcome.status, outcome.sent, outcome.recipients, outcome.method) == (DeliveryStatus.SENT, 2, 2,
                                                                                   "attachment")
    received = server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == RECIPIENTS["ws_north"]
    assert all(len(r.rcpt_tos) == 1 and r.message["To"] == r.rcpt_tos[0] for r in received)
    stored = _object(storage, "tenant-files/workspaces/ws_north/reports/2026-10-19-executive-report.html")
    stored_pdf = _object(storage, "tenant-files/workspaces/ws_north/reports/2026-10-19-executive-report.pdf")
    assert stored_pdf.startswith(b"%PDF-") and report.pdf is not None and 1 <= report.pdf.pages <= 3
    for got in received:
        message = got.message
        assert message["Subject"] == "Eclipse weekly report: Northwind Traders, week of 19 Oct 2026"
        summary = message.get_body(preferencelist=("plain",)).get_content()
        assert "New alerts:" in summary and f"{report.data.alerts_new:,}" in summary
        assert "Week of Mon 19 Oct 2026 – Sun 25 Oct 2026 (UTC)" in summary and "attached" in summary
        assert "In brief:" in summary and "2026-10-19-executive-report.pdf" in summary
        attachment, pdf = list(message.iter_attachments())
        assert attachment.get_filename() == "2026-10-19-executive-report.html"
        assert attachment.get_content_type() == "text/html"
        assert attachment.get_payload(decode=True) == stored == report.body
        assert (pdf.get_filename(), pdf.get_content_type()) == ("2026-10-19-executive-report.pdf", "application/pdf")
        assert pdf.get_payload(decode=True) == stored_pdf == report.pdf.body


def test_an_oversized_report_goes_as_a_link_that_dies_with_the_report(report_sqlite, storage, start_smtp):  # noqa: F811
    server = start_smtp()
    report = publish_weekly_report(report_sqlite, storage, "ws_north", WEEK, utc_now())
    mail = MailSettings(parse_smtp_url(_smtp(server)), retention_days=3, max_attachment_bytes=1_000)
    outcome = deliver_weekly_report(report_sqlite, storage, report, mail, utc_now())
    assert (outcome.status, outcome.method) == (DeliveryStatus.SENT, "link")
    for got in server.handler.received:
        assert list(got.message.iter_attachments()) == []
        summary = got.message.get_body(preferencelist=("plain",)).get_content()
        link, pdf_link = [line for line in summary.splitlines() if line.startswith("http")]
        assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == [str(3 * 86_400)]  # the report lives 3 days
        assert urllib.request.urlopen(link, timeout=30).read() == report.body
        assert urllib.request.urlopen(pdf_link, timeout=30).read() == report.pdf.body
    assert MailSettings(None).link_lifetime().total_seconds() == 7 * 86_400  # SigV4's limit, not 90 days


def test_encoded_size_is_what_goes_over_the_wire():
    body = bytes(range(256)) * 4_000
    message = build_report_email("a@b.example", subject="s", text="t", attachment=("r.html", body), message_key="k")
    wire = email.message_from_bytes(message.as_bytes(policy=default_policy.clone(linesep="\r\n")))
    [part] = [p for p in wire.walk() if p.get_filename()]
    assert len(part.get_payload()) <= encoded_attachment_bytes(len(body)) <= len(part.get_payload()) + 2
    assert attachment_fits(7_000_000) and not attachment_fits(7_500_000)  # base64 grows a file by a third


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("workspaces", ["ws_north", "ws_missing", "ws_hostile", "ws_quiet"])
        yield inst


def _resources(engine, s3_endpoint, bucket, smtp_url):
    return {"source_db": SourceDatabaseResource(url=str(engine.url)),
            "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint),
            "smtp": SmtpResource(url=smtp_url), "limits": ExportLimitsResource()}


def _check_history(instance) -> dict[str, list]:
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("executive_report"), "report_delivered"), limit=100)
    by_partition: dict[str, list] = {}
    for record in history:
        by_partition.setdefault(record.partition, []).append(record)
    return by_partition


def test_an_smtp_outage_keeps_the_report_and_fails_the_check_on_that_partition(report_sqlite, instance, s3_endpoint,
                                                                              bucket):
    closed = f"smtp://127.0.0.1:{free_port()}"
    resources = _resources(report_sqlite, s3_endpoint, bucket, closed)
    result = materialize([executive_report], partition_key="2026-10-19|ws_north", instance=instance,
                         resources=resources, tags=ASKED)
    assert result.success  # the report is made; its delivery failure is the check's business
    storage = resources["storage"].get_storage()
    assert _object(storage, "workspaces/ws_north/reports/2026-10-19-executive-report.html").startswith(b"<!DOCTYPE")
    [record] = _check_history(instance)["2026-10-19|ws_north"]
    evaluation = record.event.asset_check_evaluation
    assert record.status.value == "FAILED" and not evaluation.passed
    assert "2 of 2 message(s) failed" in evaluation.description
    assert f"could not send email through SMTP server 127.0.0.1:{closed.rsplit(':', 1)[1]}" in evaluation.description
    [materialization] = instance.fetch_materializations(AssetKey("executive_report"), limit=10).records
    assert evaluation.target_materialization_data.storage_id == materialization.storage_id  # shown on the partition
    metadata = materialization.asset_materialization.metadata
    assert materialization.partition_key == "2026-10-19|ws_north" and metadata["mailed_to"].value == 0
    assert metadata["workspace_id"].value == "ws_north" and metadata["week"].value == "2026-10-19"
    assert metadata["s3_uri"].value == f"s3://{bucket}/workspaces/ws_north/reports/2026-10-19-executive-report.html"


def test_without_smtp_the_run_says_so_once_and_writes_every_report(report_sqlite, instance, s3_endpoint, bucket,
                                                                  monkeypatch):
    monkeypatch.delenv("ECLIPSE_SMTP_URL", raising=False)
    result = materialize([executive_report], instance=instance,
                         resources=_resources(report_sqlite, s3_endpoint, bucket, None),
                         tags={RANGE_START: "2026-10-12|ws_hostile", RANGE_END: "2026-10-19|ws_quiet", **ASKED})
    assert result.success
    lines = [e.message for e in instance.all_logs(result.run_id) if "ECLIPSE_SMTP_URL is unset:" in (e.message or "")]
    assert len(lines) == 1
    keys = sorted(o["Key"] for o in resources_objects(s3_endpoint, bucket))
    assert keys == [f"workspaces/{ws}/reports/{week}-executive-report.{ext}"
                    for ws in ("ws_hostile", "ws_quiet") for week in ("2026-10-12", "2026-10-19")
                    for ext in ("html", "pdf")]
    assert {p: [r.status.value for r in rs] for p, rs in _check_history(instance).items()} == {
        f"{week}|{ws}": ["SUCCEEDED"] for ws in ("ws_hostile", "ws_quiet") for week in ("2026-10-12", "2026-10-19")}


def resources_objects(s3_endpoint: str, bucket: str) -> list[dict]:
    from eclipse_exports.storage.client import make_s3_client

    return make_s3_client(s3_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])


def test_a_ranged_run_records_each_partition_once_and_fails_only_the_broken_one(report_sqlite, instance, s3_endpoint,
                                                                               bucket, start_smtp):  # noqa: F811
    server = start_smtp()
    result = materialize([executive_report], instance=instance, raise_on_error=False,
                         resources=_resources(report_sqlite, s3_endpoint, bucket, _smtp(server)),
                         tags={RANGE_START: "2026-10-19|ws_north", RANGE_END: "2026-10-19|ws_hostile", **BY_SCHEDULE})
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and "2026-10-19|ws_missing" in failures[-1].message + str(failures[-1].event_specific_data.error)
    assert "workspace 'ws_missing' does not exist" in str(failures[-1].event_specific_data.error)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(retries) == 2  # the step was retried, and each retry skipped the reports already done
    materialized = [r.partition_key for r in instance.fetch_materializations(AssetKey("executive_report"),
                                                                            limit=100).records]
    assert sorted(materialized) == ["2026-10-19|ws_hostile", "2026-10-19|ws_north"]
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(RECIPIENTS["ws_north"]
                                                                            + RECIPIENTS["ws_hostile"])
    evaluated = {p: [r.status.value for r in rs if r.event and r.event.asset_check_evaluation]
                 for p, rs in _check_history(instance).items()}
    assert evaluated == {"2026-10-19|ws_north": ["SUCCEEDED"], "2026-10-19|ws_hostile": ["SUCCEEDED"],
                         "2026-10-19|ws_missing": []}



def _mailed(instance, partition: str) -> list[str]:
    records = instance.fetch_materializations(AssetKey("executive_report"), limit=100).records
    return [r.asset_materialization.metadata["delivery_status"].value for r in reversed(records)
            if r.partition_key == partition]


def test_the_schedule_mails_a_week_once_and_a_backfill_only_when_asked(report_sqlite, instance, s3_endpoint, bucket,
                                                                      start_smtp):  # noqa: F811
    server = start_smtp()
    resources = _resources(report_sqlite, s3_endpoint, bucket, _smtp(server))
    partition, owners = "2026-10-19|ws_north", len(RECIPIENTS["ws_north"])
    for tags in (BY_SCHEDULE, BY_SCHEDULE):  # a second schedule run of the same week (a cron change, say)
        assert materialize([executive_report], partition_key=partition, instance=instance, resources=resources,
                           tags=tags).success
    assert len(server.handler.received) == owners
    assert materialize([executive_report], partition_key=partition, instance=instance, resources=resources,
                       tags={"dagster/backfill": "abc"}).success  # a backfill nobody asked to mail
    assert len(server.handler.received) == owners
    assert materialize([executive_report], partition_key=partition, instance=instance, resources=resources,
                       tags={"dagster/backfill": "abd", **ASKED}).success  # report-backfill --email
    assert len(server.handler.received) == 2 * owners
    assert _mailed(instance, partition) == ["sent", "already_delivered", "not_asked", "sent"]


def test_without_the_pdf_setting_only_the_page_is_stored_and_mailed(report_sqlite, instance, s3_endpoint, bucket,
                                                                   start_smtp, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ECLIPSE_REPORT_PDF", "false")
    server = start_smtp()
    assert materialize([executive_report], partition_key="2026-10-19|ws_north", instance=instance, tags=ASKED,
                       resources=_resources(report_sqlite, s3_endpoint, bucket, _smtp(server))).success
    assert [o["Key"] for o in resources_objects(s3_endpoint, bucket)] == [
        "workspaces/ws_north/reports/2026-10-19-executive-report.html"]
    assert all(len(list(r.message.iter_attachments())) == 1 for r in server.handler.received)


def test_who_mails_follows_the_run_tags():
    from eclipse_exports.assets.executive_report import mail_policy

    schedule = {"dagster/schedule_name": "executive_report_schedule"}
    assert mail_policy(schedule) == "once"  # the weekly tick
    assert mail_policy({**schedule, "dagster/parent_run_id": "r1", "dagster/retry_number": "1"}) == "once"
    assert mail_policy({**schedule, "dagster/parent_run_id": "r1", "dagster/is_resume_retry": "true"}) == "once"
    assert mail_policy({**schedule, "dagster/parent_run_id": "r1"}) == "never"  # a person re-executed it all
    assert mail_policy({"dagster/backfill": "b1"}) == "never" and mail_policy({}) == "never"
    assert mail_policy({"dagster/backfill": "b1", "eclipse/email": "true"}) == "always"
    assert mail_policy({**schedule, "eclipse/email": "false"}) == "never"
