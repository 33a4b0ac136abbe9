"""On-demand executive reports: figures from the database, autoescaped HTML, delivered like any export."""

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.reports import LIST_LIMIT, collect_report, render_report
from tests.dataset import DATASET

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


def _in_period(rows, column):
    return [r for r in rows if r[column] is not None and START <= r[column] < END]


def test_figures_match_the_source_rows(source):
    with source.connect() as conn:
        data = collect_report(conn, "ws_a", START, END, END)
    alerts = _in_period([r for r in DATASET["alerts"] if r["workspace_id"] == "ws_a"], "detected_at")
    infringements = _in_period([r for r in DATASET["infringements"] if r["workspace_id"] == "ws_a"], "detected_at")
    actions = _in_period([r for r in DATASET["actions"] if r["workspace_id"] == "ws_a"], "created_at")
    assert data.alerts_by_severity == dict(Counter(r["severity"] for r in alerts))
    assert data.infringements_by_type == dict(Counter(r["type"] for r in infringements))
    assert data.actions_by_status == dict(Counter(r["status"] for r in actions))
    critical = [r for r in DATASET["alerts"] if r["workspace_id"] == "ws_a" and r["severity"] == "critical"
                and r["status"] in ("new", "acknowledged") and r["detected_at"] is not None and r["detected_at"] < END]
    assert data.ageing.critical_open_count == len(critical)
    assert len(data.ageing.critical_open) == min(LIST_LIMIT, len(critical))
    assert (data.alert_count, data.infringement_count, data.action_count) == (
        len(alerts), len(infringements), len(actions))
    # rowCount counts the rows the page lists, never a sum of different kinds of records.
    assert data.row_count == len(data.ageing.critical_open) + len(data.ageing.oldest)
    assert render_report(data).count("<tr data-row ") == data.row_count


def test_html_escapes_hostile_text():
    from eclipse_exports.reports import ReportData
    from eclipse_exports.reports.ageing import Ageing
    from eclipse_exports.reports.brands import BrandRisk

    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    data = ReportData("ws_a", hostile, START, END, END, alerts_by_severity={hostile: 1},
                      brands=[BrandRisk("b1", hostile, 3, 1, 2, 1)],
                      ageing=Ageing(critical_open=[{"id": "a1", "title": hostile, "url": "javascript:alert(3)",
                                                    "brand": hostile, "status": "new", "detected_at": START,
                                                    "age_seconds": 86_400.0}], critical_open_count=1))
    html = render_report(data)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "onerror=&#34;alert(2)&#34;" in html
    assert 'href="javascript' not in html


def test_report_request_lands_as_html_in_s3(source, storage, redis_client):
    request = ExportRequest.from_payload(json.dumps({
        "id": "rep-1", "workspaceId": "ws_a", "userId": "u_viewer", "resourceType": "report", "format": "html",
        "filters": {"from": START.isoformat(), "to": END.isoformat()}}))
    result = run_export(request, engine=source, storage=storage, status=JobStatusStore(redis_client),
                        limits=ExportLimits(), run_id="run-rep")
    assert result.key.endswith("-report-rep-1.html") and "/workspaces/ws_a/exports/" in result.key
    body = storage.client.get_object(Bucket=storage.bucket, Key=result.key)["Body"].read().decode()
    assert body.startswith("<!DOCTYPE html>") and "Executive report: Alpha Inc" in body
    assert "&lt;script&gt;" in body and "<script>alert(1)" not in body  # hostile titles from the dataset
    status = JobStatusStore(redis_client).get("rep-1")
    assert status["status"] == "completed" and int(status["rowCount"]) == result.row_count > 0


def _period_of(storage, key: str) -> str:
    body = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read().decode()
    return body.split("<title>", 1)[1].split("</title>", 1)[0].split(" · ", 1)[1]


@pytest.mark.parametrize("created", [True, False], ids=["createdAt", "pick-up time"])
def test_a_re_executed_report_renders_the_same_period(source, storage, redis_client, created):
    """Without from/to the period counts back 7 days from the request's createdAt (else its pick-up time), not
    from the run's start, so a retry or re-execution ten minutes later renders the same file."""
    moment = datetime(2026, 11, 29, 12, 1, tzinfo=UTC)
    payload = {"id": f"rep-again-{created}", "workspaceId": "ws_a", "userId": "u_viewer", "resourceType": "report",
               "format": "html", **({"createdAt": moment.isoformat()} if created else {})}
    request = ExportRequest.from_payload(json.dumps(payload))
    periods = []
    for attempt in range(2):  # the run, then its re-execution
        result = run_export(request, engine=source, storage=storage, status=JobStatusStore(redis_client),
                            limits=ExportLimits(), run_id=f"run-again-{attempt}",
                            key_time=None if created else moment)
        periods.append(_period_of(storage, result.key))
    assert periods == ["22 Nov 2026, 12:01 UTC – 29 Nov 2026, 12:01 UTC"] * 2


@pytest.mark.parametrize("user", ["u_viewer", "u_analyst"])
def test_report_requests_become_runs(user, redis_client, redis_url, sqlite_engine):
    from dagster import DagsterInstance, build_sensor_context

    from eclipse_exports.queue.keys import REQUEST_STREAM
    from eclipse_exports.resources import RedisResource, SourceDatabaseResource
    from eclipse_exports.sensors import export_request_sensor

    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps({
        "id": f"rep-{user}", "workspaceId": "ws_a", "userId": user, "resourceType": "report", "format": "html"})})
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={
            "redis": RedisResource(url=redis_url), "source_db": SourceDatabaseResource(url=str(sqlite_engine.url))})
        [run] = export_request_sensor(context).run_requests
    assert run.job_name == "report_export_job" and run.partition_key == "ws_a"
    assert run.run_config["ops"]["report_export"]["config"]["format"] == "html"
