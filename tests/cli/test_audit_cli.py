"""``eclipse-exports audit`` against real Redis and S3 (moto): read, verify, public key; a hand-changed archive
makes `audit verify` exit 1 naming its day. The days are archived by the archiver the asset runs (``audit
archive`` itself, through a live webserver, is in ``tests/e2e/test_audit_archive.py``)."""

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eclipse_exports.audit.archive import AuditArchiver
from eclipse_exports.audit.signing import load_private_key
from eclipse_exports.audit.trail import AuditTrail, millis
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.keys import audit_stream_key
from eclipse_exports.queue.status import JobStatusStore
from tests.cli.test_cli import cli

TODAY = datetime.now(UTC).date()
DAYS = [TODAY - timedelta(days=n) for n in (3, 2, 1)]


@pytest.fixture
def trail(redis_client):
    """Two entries on each of the last three days, then a job's life today (through the status store)."""
    for day in DAYS:
        for hour in (3, 15):
            moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
            redis_client.xadd(audit_stream_key("ws_acme"), {
                "eventId": f"e-{day}-{hour}", "jobId": f"job-{day}", "actor": "usr_acme_owner", "event": "requested",
                "details": "{}"}, id=f"{millis(moment)}-0")
    store = JobStatusStore(redis_client)
    request = ExportRequest.from_payload(json.dumps({"id": "job-today", "workspaceId": "ws_acme",
                                                     "userId": "usr_acme_owner", "resourceType": "audit_logs",
                                                     "format": "csv"}))
    store.queued(request, datetime.now(UTC))
    store.running(request, "run-1", datetime.now(UTC))


def test_read_archive_verify_and_a_changed_day_named(env, trail, storage, redis_client):
    shown = cli(env, "audit", "--workspace", "ws_acme", "--json")
    assert shown.exit_code == 0, shown.output
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(entries) == 8 and entries[-1]["event"] == "run_started" and entries[-1]["jobId"] == "job-today"
    assert set(entries[0]) == {"eventId", "time", "workspaceId", "jobId", "actor", "event", "details"}
    one_job = cli(env, "audit", "--workspace", "ws_acme", "--job", "job-today")
    assert one_job.exit_code == 0 and [line.split()[3] for line in one_job.stdout.splitlines()] == [
        "requested", "run_started"]

    archiver = AuditArchiver(storage, AuditTrail(redis_client), load_private_key(None, Path(env["ECLIPSE_DATA_DIR"])))
    archived = archiver.archive("ws_acme", DAYS[-1])
    assert archived.entries == 2 and list(archived.written) == DAYS
    assert archiver.archive("ws_acme", TODAY).partial
    again = cli(env, "audit", "--workspace", "ws_acme", "--json")  # archives + stream: the same eight entries
    assert [json.loads(line)["eventId"] for line in again.stdout.splitlines()] == [e["eventId"] for e in entries]

    ok = cli(env, "audit", "verify", "--workspace", "ws_acme")
    assert ok.exit_code == 0 and "OK: 4 archived day(s) of ws_acme, 1 partial, 8 entries" in ok.stdout
    public = cli(env, "audit", "public-key")
    assert public.stdout.startswith("-----BEGIN PUBLIC KEY-----")

    key = storage.audit_key("ws_acme", DAYS[1])
    body = gzip.decompress(storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read())
    storage.client.put_object(Bucket=storage.bucket, Key=key,
                              Body=gzip.compress(body.replace(b"usr_acme_owner", b"usr_acme_viewer", 1)))
    bad = cli(env, "audit", "verify", "--workspace", "ws_acme")
    assert bad.exit_code == 1
    assert f"FAILED: ws_acme's audit archive of {DAYS[1]} was modified, deleted or reordered" in bad.stderr
    assert cli(env, "audit", "verify", "--workspace", "ws_acme", "--since", DAYS[2].isoformat()).exit_code == 0


def _demo_database(env: dict) -> str:
    from sqlalchemy import create_engine

    from eclipse_exports.source.demo_data import load_demo_data

    url = f"sqlite:///{Path(env['ECLIPSE_DATA_DIR']) / 'source.db'}"
    Path(env["ECLIPSE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    load_demo_data(engine, "tiny", seed=3)
    engine.dispose()
    return url


def test_bad_arguments_get_one_line(env):
    for args, message in ((("audit",), "missing --workspace"),
                          (("audit", "--workspace", "../x"), "not a workspace id"),
                          (("audit", "--workspace", "ws_acme", "--since", "last week"), "--since 'last week'"),
                          (("audit", "verify", "--workspace", "ws_acme"), "no audit signing key"),
                          (("audit", "archive", "--workspace", "ws_acme", "--day", "2026-13-01"), "not a date")):
        result = cli(env, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    future = cli(env, "audit", "archive", "--workspace", "ws_acme", "--day", (TODAY + timedelta(days=2)).isoformat())
    assert future.exit_code == 2 and "has not begun yet" in future.stderr
    known = {**env, "ECLIPSE_DATABASE_URL": _demo_database(env)}
    typo = cli(known, "audit", "archive", "--workspace", "ws_acmee", "--day", TODAY.isoformat())
    assert typo.exit_code == 2 and "unknown workspace 'ws_acmee': not in the source database and no audit trail" \
        in typo.stderr
    nowhere = cli(known, "audit", "archive", "--workspace", "ws_acme", "--day", TODAY.isoformat(), "--dagster-url",
                  "http://127.0.0.1:9")
    assert nowhere.exit_code == 2 and "cannot reach the Dagster webserver at http://127.0.0.1:9" in nowhere.stderr


def test_a_retry_is_recorded_on_the_job_it_retries(env, redis_client):
    store = JobStatusStore(redis_client)
    request = ExportRequest.from_payload(json.dumps({"id": "job-failed", "workspaceId": "ws_acme",
                                                     "userId": "usr_acme_owner", "resourceType": "alerts",
                                                     "format": "csv"}))
    store.queued(request, datetime.now(UTC))
    store.failed("job-failed", ErrorCode.EXPORT_FAILED, "S3 was down", datetime.now(UTC))
    retried = cli(env, "retry", "job-failed")
    assert retried.exit_code == 0, retried.output
    trail = [json.loads(line) for line in cli(env, "audit", "--workspace", "ws_acme", "--json").stdout.splitlines()]
    assert [(e["jobId"], e["event"]) for e in trail] == [("job-failed", "requested"), ("job-failed", "failed"),
                                                          ("job-failed", "retried")]
    assert trail[-1]["details"] == {"newJobId": retried.stdout.strip()} and trail[-1]["actor"] == "system:cli"
