"""The retention clean-up on a real S3 endpoint (moto's server) and a real Redis.

Ages come from the objects' own ``LastModified``: "old" files are written,
the clock passes a second boundary (``split``), "new" files are written, and
the pass runs ``as_of`` ``split`` + the retention, so exactly the old ones are due.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest

from eclipse_exports.queue.intake import INTAKE_FLOOR_KEY
from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, REQUEST_STREAM, job_status_key, workspace_usage_key
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.cleanup import run_cleanup
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.storage.client import ExportStorage

RETENTION = RetentionPolicy(export_retention=timedelta(hours=72), report_retention=timedelta(days=90))
WORKSPACES = ("ws_a", "ws_b", "ws_c", "ws_d")
OLD_PER_WORKSPACE, NEW_PER_WORKSPACE = 300, 25
STAMP = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def put_all(storage: ExportStorage, objects: dict[str, bytes]) -> None:
    def put(item):
        storage.client.put_object(Bucket=storage.bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, objects.items()))


def all_keys(storage: ExportStorage) -> set[str]:
    return {o["Key"] for o in storage.iter_objects("")}


def cross_a_second() -> datetime:
    """Wait until the wall clock has moved into a new second (S3 dates are whole seconds); returns that moment."""
    time.sleep(1.05 - (time.time() % 1))
    moment = datetime.now(UTC)
    time.sleep(1.05)
    return moment


def exports(storage: ExportStorage, prefix: str, count: int) -> dict[str, bytes]:
    """``count`` export files per workspace, job ids ``{prefix}-{ws}-{n}``, sizes 10–49 bytes."""
    return {storage.export_key(ws, "alerts", f"{prefix}-{ws}-{n}", "csv", STAMP + timedelta(seconds=n)):
            b"x" * (10 + n % 40) for ws in WORKSPACES for n in range(count)}


def completed(redis_client, storage: ExportStorage, keys) -> None:
    store = JobStatusStore(redis_client)
    pipe = redis_client.pipeline(transaction=False)
    for key in keys:
        job_id = storage.parse_key(key).job_id
        store.write(job_id, {"id": job_id, "status": "completed", "filePath": key, "downloadUrl": "http://x/y",
                             "expiresAt": "2026-11-04T09:30:00Z", "rowCount": 3, "byteSize": 10}, pipe)
    pipe.execute()


def status(redis_client, job_id) -> dict:
    return JobStatusStore(redis_client).get(job_id)


@pytest.fixture
def estate(storage, redis_client):
    """Thousands of old and new exports in four workspaces, reports, foreign and unparseable keys, an upload."""
    old = exports(storage, "old", OLD_PER_WORKSPACE)
    old_report = storage.report_key("ws_a", date(2026, 1, 5))
    old_pdf = storage.report_key("ws_a", date(2026, 1, 5), "pdf")
    foreign = {"other-app/workspaces/ws_a/exports/20261101T093000Z-alerts-x.csv": b"not ours",
               "tenant-files/readme.txt": b"prefix but not workspaces/"}
    unparseable = {"tenant-files/workspaces/ws_a/exports/garbage.csv": b"?",
                   "tenant-files/workspaces/ws_b/tmp/20261101T093000Z-alerts-j.csv": b"?",
                   "tenant-files/workspaces/ws_c/exports/20261101T093000Z-alerts-j.xlsx": b"?"}
    put_all(storage, {**old, old_report: b"<html>", old_pdf: b"%PDF-", **foreign, **unparseable})
    upload_key = storage.export_key("ws_b", "alerts", "dead-worker", "csv", STAMP)
    upload = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=upload_key)
    storage.client.upload_part(Bucket=storage.bucket, Key=upload_key, UploadId=upload["UploadId"], PartNumber=1,
                               Body=b"p" * 1000)
    completed(redis_client, storage, old)
    rerun = storage.export_key("ws_a", "alerts", "old-ws_a-0", "csv", STAMP)
    JobStatusStore(redis_client).write("old-ws_a-0", {"status": "running", "runId": "rerun"})
    failed = storage.export_key("ws_b", "alerts", "old-ws_b-1", "csv", STAMP + timedelta(seconds=1))
    JobStatusStore(redis_client).write("old-ws_b-1", {"status": "failed", "errorCode": "export_failed"})
    split = cross_a_second()
    new = exports(storage, "new", NEW_PER_WORKSPACE)
    new_report = storage.report_key("ws_b", date(2026, 11, 23))
    new_pdf = storage.report_key("ws_b", date(2026, 11, 23), "pdf")
    put_all(storage, {**new, new_report: b"<html>", new_pdf: b"%PDF-"})
    completed(redis_client, storage, new)
    return {"old": old, "new": new, "old_report": old_report, "new_report": new_report, "old_pdf": old_pdf,
            "new_pdf": new_pdf, "foreign": foreign,
            "unparseable": unparseable, "rerun": rerun, "failed": failed, "split": split}


def test_a_pass_removes_exactly_the_expired_exports_and_the_stale_upload(storage, redis_client, estate):
    before = all_keys(storage)
    redis_client.set(workspace_usage_key("ws_d"), 999_999_999)
    redis_client.set(workspace_usage_key("ws_gone"), 12_345)
    as_of = estate["split"] + RETENTION.export_retention

    dry = run_cleanup(storage, redis_client, RETENTION, as_of, dry_run=True)
    assert all_keys(storage) == before and len(storage.pending_multipart_uploads()) == 1
    assert status(redis_client, "old-ws_c-5")["status"] == "completed"

    summary = run_cleanup(storage, redis_client, RETENTION, as_of)
    due = set(estate["old"]) - {estate["rerun"]}
    assert summary.ok, summary.render()
    assert all_keys(storage) == before - due
    assert (dry.files_removed, dry.bytes_removed, dry.uploads_aborted, dry.jobs_expired) == (
        summary.files_removed, summary.bytes_removed, summary.uploads_aborted, summary.jobs_expired)
    assert summary.files_removed == len(due) == 4 * OLD_PER_WORKSPACE - 1
    assert summary.bytes_removed == sum(len(estate["old"][k]) for k in due)
    assert summary.jobs_expired == len(due) - 1 and summary.deferred == 1
    assert storage.pending_multipart_uploads() == [] and summary.uploads_aborted == 1
    assert sorted(summary.unparseable) == sorted(estate["unparseable"])
    rows = {r["workspace"]: r for r in summary.table()}
    assert rows["ws_b"]["uploads_aborted"] == 1 and rows["ws_a"]["files"] == OLD_PER_WORKSPACE - 1
    assert rows["ws_c"]["bytes_removed"] == sum(len(v) for k, v in estate["old"].items() if "/ws_c/" in k)

    expired = status(redis_client, "old-ws_c-5")
    assert expired["status"] == "expired" and "downloadUrl" not in expired
    assert expired["filePath"] == storage.export_key("ws_c", "alerts", "old-ws_c-5", "csv",
                                                     STAMP + timedelta(seconds=5))
    assert redis_client.ttl(job_status_key("old-ws_c-5")) > (72 + 7 * 24 - 1) * 3600
    assert status(redis_client, "old-ws_b-1")["status"] == "failed"
    assert status(redis_client, "old-ws_a-0")["status"] == "running"
    assert status(redis_client, "new-ws_a-3")["status"] == "completed"
    for ws in WORKSPACES:
        assert int(redis_client.get(workspace_usage_key(ws))) == storage.workspace_export_bytes(ws) > 0
    assert int(redis_client.get(workspace_usage_key("ws_gone"))) == 0

    later = run_cleanup(storage, redis_client, RETENTION, estate["split"] + RETENTION.report_retention)
    assert later.ok and later.files_removed == len(estate["new"]) + 2  # and the old report, HTML and PDF
    # A report's PDF lives and goes with its HTML.
    assert all_keys(storage) == {estate["rerun"], estate["new_report"], estate["new_pdf"], *estate["foreign"],
                                 *estate["unparseable"]}


def test_a_young_upload_is_left_to_finish_and_counts_toward_usage(storage, redis_client):
    key = storage.export_key("ws_a", "alerts", "busy", "csv", STAMP)
    upload = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    storage.client.upload_part(Bucket=storage.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                               Body=b"p" * 700)
    # Judged half an hour after the upload began (moto dates every upload in 2010, so "now" would not do).
    initiated = storage.pending_multipart_uploads()[0]["Initiated"]
    summary = run_cleanup(storage, redis_client, RETENTION, initiated + timedelta(minutes=30))
    assert summary.ok and summary.uploads_aborted == 0
    assert len(storage.pending_multipart_uploads()) == 1
    assert int(redis_client.get(workspace_usage_key("ws_a"))) == 700


def test_streams_lose_handled_entries_older_than_retention_and_old_dead_letters(storage, redis_client):
    now = datetime.now(UTC)

    def entry_id(hours: float) -> str:
        return f"{int((now - timedelta(hours=hours)).timestamp() * 1000)}-0"

    ids = [entry_id(100), entry_id(95), entry_id(90), entry_id(10)]
    for stream_id in ids:
        redis_client.xadd(REQUEST_STREAM, {"payload": b"{}"}, id=stream_id)
    redis_client.xadd(DEAD_LETTER_STREAM, {"reason": "old"}, id=entry_id(40 * 24))
    redis_client.xadd(DEAD_LETTER_STREAM, {"reason": "recent"}, id=entry_id(10 * 24))

    assert run_cleanup(storage, redis_client, RETENTION, now).stream_entries_trimmed == 0  # no floor: nothing
    redis_client.set(INTAKE_FLOOR_KEY, ids[1])
    summary = run_cleanup(storage, redis_client, RETENTION, now)
    # The 90-hour-old entry is past the intake's last handled entry: unhandled, so it stays despite its age.
    assert summary.stream_entries_trimmed == 1
    assert [e[0].decode() for e in redis_client.xrange(REQUEST_STREAM)] == ids[1:]
    assert [e[1][b"reason"] for e in redis_client.xrange(DEAD_LETTER_STREAM)] == [b"recent"]

    redis_client.set(INTAKE_FLOOR_KEY, ids[3])
    assert run_cleanup(storage, redis_client, RETENTION, now).stream_entries_trimmed == 2
    assert [e[0].decode() for e in redis_client.xrange(REQUEST_STREAM)] == ids[3:]


def test_a_workspace_with_nothing_due_keeps_everything(storage, redis_client):
    keys = exports(storage, "keep", 3)
    put_all(storage, keys)
    summary = run_cleanup(storage, redis_client, RETENTION, datetime.now(UTC) + timedelta(hours=71))
    assert summary.ok and summary.files_removed == 0 and summary.table() == []
    assert all_keys(storage) == set(keys)
    assert "removed 0 files" in summary.render()


def test_a_failing_batch_is_reported_the_rest_goes_and_the_next_pass_finishes(s3_endpoint, bucket, redis_client):
    from eclipse_exports.storage.client import make_s3_client
    from tests.s3_fault_proxy import S3FaultProxy

    with S3FaultProxy(s3_endpoint) as proxy:
        storage = ExportStorage(make_s3_client(proxy.url), bucket, "tenant-files")
        old = {storage.export_key(ws, "actions", f"j-{ws}-{n}", "json", STAMP): b"[]" for ws in WORKSPACES
               for n in range(12)}
        put_all(storage, old)
        completed(redis_client, storage, old)
        as_of = cross_a_second() + RETENTION.export_retention
        # Every DeleteObjects naming a ws_b key fails, retries included.
        rule = proxy.inject(method="POST", query=r"(^|&)delete(=|&|$)", body=b"/workspaces/ws_b/", status=500)
        first = run_cleanup(storage, redis_client, RETENTION, as_of, batch_size=10)
        assert rule.hits >= 2 and not first.ok
        failed = {k for f in first.failures for k in f.keys}
        assert {k for k in old if "/ws_b/" in k} <= failed and first.failed_keys == len(failed)
        assert all("DeleteObjects failed" in f.cause and "InternalError" in f.cause for f in first.failures)
        assert all_keys(storage) == failed  # every batch without a ws_b key went
        assert {r["workspace"]: r["errors"] > 0 for r in first.table()}["ws_b"]
        assert "FAILED" in first.render() and "ws_b" in first.render()
        assert int(redis_client.get(workspace_usage_key("ws_b"))) == sum(
            len(old[k]) for k in failed if "/ws_b/" in k)

        proxy.clear()
        second = run_cleanup(storage, redis_client, RETENTION, as_of, batch_size=10)
        assert second.ok and second.files_removed == len(failed)
        assert all_keys(storage) == set() and int(redis_client.get(workspace_usage_key("ws_b"))) == 0
        assert status(redis_client, "j-ws_b-3")["status"] == "expired"
