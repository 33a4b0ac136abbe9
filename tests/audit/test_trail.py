"""The write-ahead audit trail on a real Redis: every status change appends its entry in the same script, once."""

import json
from datetime import UTC, datetime, timedelta

from eclipse_exports.audit.trail import AuditTrail
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.keys import audit_stream_key
from eclipse_exports.queue.status import JobStatusStore

REQUEST = ExportRequest.from_payload(json.dumps({
    "id": "job-1", "workspaceId": "ws_acme", "userId": "usr_acme_owner", "resourceType": "alerts", "format": "csv"}))


def events(redis_client, workspace="ws_acme") -> list:
    return list(AuditTrail(redis_client).entries(workspace))


def test_a_jobs_life_is_recorded_once_per_change_with_what_happened(redis_client):
    store = JobStatusStore(redis_client)
    now = datetime.now(UTC)
    store.pending(REQUEST, now)
    store.queued(REQUEST, now, "1-0")
    store.queued(REQUEST, now, "1-0")  # the sensor reading the same entry again after a restart
    store.running(REQUEST, "run-1", now)
    store.requeued("job-1", "run-1")
    store.running(REQUEST, "run-2", now)
    store.progress("job-1", 5, 10)
    key = "workspaces/ws_acme/exports/20261101T000000Z-alerts-job-1.csv"
    store.completed("job-1", {"rowCount": 10, "byteSize": 123, "filePath": key, "downloadUrl": "https://x",
                              "expiresAt": "2099-01-01T00:00:00Z"}, sha256="ab" * 32)
    store.completed("job-1", {"rowCount": 10})  # a second writer of the same status: no second entry
    store.expired(["job-1"])
    trail = events(redis_client)
    assert [e.event for e in trail] == ["requested", "run_started", "requeued", "run_started", "completed",
                                        "link_issued", "expired"]
    requested, started, requeued, restarted, completed, link, expired = trail
    assert requested.actor == "usr_acme_owner" and requested.job_id == "job-1"
    assert requested.details["request"]["resourceType"] == "alerts"
    assert started.actor == "system:run" and started.details == {"runId": "run-1"}
    assert requeued.details == {"previousStatus": "running"} and restarted.details == {"runId": "run-2"}
    assert completed.details == {"runId": "run-2", "filePath": key, "byteSize": 123, "rowCount": 10,
                                 "sha256": "ab" * 32}
    assert link.details == {"by": "run", "filePath": key, "fileExpiresAt": "2099-01-01T00:00:00Z"}
    assert expired.actor == "system:retention" and expired.details == {"filePath": key}
    assert len({e.event_id for e in trail}) == len(trail)
    assert all(e.time <= datetime.now(UTC) + timedelta(seconds=1) for e in trail)


def test_rejections_and_failures_name_their_code_and_cause(redis_client):
    store = JobStatusStore(redis_client)
    store.rejected("job-2", ErrorCode.FORBIDDEN, "role 'viewer' may not export actions",
                   {"id": "job-2", "workspaceId": "ws_acme", "userId": "usr_acme_viewer"})
    store.queued(REQUEST.model_copy(update={"id": "job-3"}), datetime.now(UTC))
    store.failed("job-3", ErrorCode.TOO_LARGE, "12,000,000 rows match", datetime.now(UTC), "run-9")
    trail = [(e.job_id, e.event, e.actor, e.details.get("errorCode")) for e in events(redis_client)]
    assert trail == [("job-2", "requested", "usr_acme_viewer", None),
                     ("job-2", "rejected", "usr_acme_viewer", "forbidden"),
                     ("job-3", "requested", "usr_acme_owner", None),
                     ("job-3", "failed", "system:run", "too_large")]


def test_a_hash_with_a_forged_workspace_writes_into_no_trail(redis_client):
    store = JobStatusStore(redis_client)
    store.rejected("job-4", ErrorCode.INVALID_REQUEST, "bad", {"id": "job-4", "workspaceId": "ws_a:*"})
    assert redis_client.keys("eclipse:exports:audit:*") == []
    assert redis_client.exists(audit_stream_key("ws_a")) == 0


def test_appended_events_read_back_in_order_and_pages(redis_client):
    trail = AuditTrail(redis_client)
    ids = [trail.append("ws_acme", "link_issued", job_id=f"j{i}", details={"n": i}) for i in range(25)]
    read = list(trail.entries("ws_acme", page=10))
    assert [e.event_id for e in read] == ids and read[3].details == {"n": 3}
    first = trail.first_time("ws_acme")
    assert first is not None and trail.trim_before("ws_acme", first + timedelta(days=1)) == 25


def test_a_job_re_run_after_it_completed_keeps_one_completed_entry_by_event_id(redis_client, storage):
    """Dagster re-runs a run killed after its job completed: the job completes again, under the same event id."""
    from eclipse_exports.audit.reader import read_trail

    store = JobStatusStore(redis_client)
    store.queued(REQUEST, datetime.now(UTC))
    for run_id in ("run-1", "run-2"):
        store.running(REQUEST, run_id, datetime.now(UTC))
        store.completed("job-1", {"rowCount": 1, "filePath": "k"}, sha256="cd" * 32)
    raw = [e.event for e in events(redis_client)]
    assert raw.count("completed") == 2
    read = [e.event for e in read_trail(storage, AuditTrail(redis_client), "ws_acme")]
    assert read == ["requested", "run_started", "completed", "run_started"]


def test_a_request_for_a_workspace_that_does_not_exist_writes_no_trail(redis_client):
    JobStatusStore(redis_client).rejected("job-5", ErrorCode.UNKNOWN_WORKSPACE, "workspace 'ws_nope' does not exist",
                                          {"id": "job-5", "workspaceId": "ws_nope", "userId": "u"})
    assert redis_client.keys("eclipse:exports:audit:*") == []
