"""An owner exports the workspace's own export audit trail like any resource (``export_audit``): archived days
and the stream's entries, in every format, only its own workspace; analysts are refused."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eclipse_exports.audit.archive import AuditArchiver
from eclipse_exports.audit.trail import AuditTrail
from eclipse_exports.exports.run import ExportFailed, ExportLimits, run_export
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from tests.readback import read_rows

COLUMNS = ["event_id", "time", "workspace_id", "job_id", "actor", "event", "details"]


def request(job: str, user: str, fmt: str, **extra) -> ExportRequest:
    return ExportRequest.from_payload(json.dumps({"id": job, "workspaceId": "ws_a", "userId": user,
                                                  "resourceType": "export_audit", "format": fmt, **extra}))


def run(sqlite_engine, storage, redis_client, req: ExportRequest):
    store = JobStatusStore(redis_client)
    store.queued(req, datetime.now(UTC))
    time.sleep(0.01)  # the snapshot ends at the run's start, to the millisecond
    return run_export(req, engine=sqlite_engine, storage=storage, status=store, limits=ExportLimits(), run_id="r")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_owner_exports_the_audit_trail_of_archived_days_and_the_stream(sqlite_engine, storage, redis_client, fmt):
    first = run(sqlite_engine, storage, redis_client, request("exp-1", "u_owner", "csv"))
    AuditTrail(redis_client).append("ws_b", "link_issued", job_id="other-tenant")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    AuditArchiver(storage, AuditTrail(redis_client), Ed25519PrivateKey.generate()).archive("ws_a", yesterday)
    result = run(sqlite_engine, storage, redis_client, request(f"exp-{fmt}", "u_owner", fmt))
    body = storage.client.get_object(Bucket=storage.bucket, Key=result.key)["Body"].read()
    rows = read_rows(body, fmt)
    assert result.verification.passed and list(rows[0]) == COLUMNS
    # Everything up to this run's start: the first job's life and this job's own request; never ws_b's.
    trail = list(AuditTrail(redis_client).entries("ws_a"))
    assert [r["event_id"] for r in rows] == [e.event_id for e in trail[:5]] and result.row_count == 5
    assert {r["workspace_id"] for r in rows} == {"ws_a"} and "other-tenant" not in {r["job_id"] for r in rows}
    events = [(r["job_id"], r["event"]) for r in rows]
    assert events[:4] == [("exp-1", "requested"), ("exp-1", "run_started"), ("exp-1", "completed"),
                          ("exp-1", "link_issued")]
    assert (f"exp-{fmt}", "run_started") not in events  # after the snapshot's moment
    completed = rows[2]["details"] if fmt == "jsonl" else json.loads(rows[2]["details"])
    assert completed["sha256"] == first.file.sha256 and completed["filePath"] == first.key


def test_analysts_may_not_export_the_audit_trail(sqlite_engine, storage, redis_client):
    with pytest.raises(ExportFailed) as refused:
        run(sqlite_engine, storage, redis_client, request("exp-x", "u_analyst", "csv"))
    assert refused.value.code is ErrorCode.FORBIDDEN
