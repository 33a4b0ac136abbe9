"""The quota reads a Redis counter kept in step with S3, and the clean-up frees space (real Redis, real S3)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from eclipse_exports.config import Settings, parse_quota_overrides
from eclipse_exports.exports.run import ExportFailed, ExportLimits, run_export
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.cleanup import run_cleanup
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.retention.usage import QuotaPolicy, WorkspaceUsage


def request(job_id: str, workspace="ws_a", user="u_analyst") -> ExportRequest:
    return ExportRequest.from_payload(json.dumps({"id": job_id, "workspaceId": workspace, "userId": user,
                                                  "resourceType": "alerts", "format": "csv"}))


def export(sqlite_engine, storage, redis_client, job_id, limits, workspace="ws_a", user="u_analyst"):
    return run_export(request(job_id, workspace, user), engine=sqlite_engine, storage=storage,
                      status=JobStatusStore(redis_client), limits=limits, run_id="run-1")


def counter(redis_client, workspace="ws_a") -> int:
    return int(redis_client.get(workspace_usage_key(workspace)))


def test_over_quota_is_refused_with_the_usage_and_cleanup_frees_the_space(sqlite_engine, storage, redis_client):
    limits = ExportLimits(workspace_quota_bytes=1_000)
    first = export(sqlite_engine, storage, redis_client, "first", limits)
    assert first.byte_size > 1_000 and counter(redis_client) == first.byte_size

    with pytest.raises(ExportFailed) as refused:
        export(sqlite_engine, storage, redis_client, "second", limits)
    assert refused.value.code is ErrorCode.QUOTA_EXCEEDED
    assert f"already holds {first.byte_size:,} bytes" in str(refused.value) and "quota 1,000" in str(refused.value)

    # The quota check no longer lists the bucket: a counter that says "free" is believed.
    redis_client.set(workspace_usage_key("ws_a"), 0)
    export(sqlite_engine, storage, redis_client, "believed", limits)
    redis_client.set(workspace_usage_key("ws_a"), 0)
    summary = run_cleanup(storage, redis_client, RetentionPolicy(), first.completed_at + timedelta(hours=1))
    assert summary.ok and counter(redis_client) == storage.workspace_export_bytes("ws_a") == 2 * first.byte_size

    summary = run_cleanup(storage, redis_client, RetentionPolicy(), first.completed_at + timedelta(hours=73))
    assert summary.files_removed == 2 and counter(redis_client) == 0 == storage.workspace_export_bytes("ws_a")
    third = export(sqlite_engine, storage, redis_client, "third", limits)
    assert counter(redis_client) == third.byte_size == storage.workspace_export_bytes("ws_a")


def test_a_workspace_override_raises_its_own_quota_only(sqlite_engine, storage, redis_client):
    limits = ExportLimits(workspace_quota_bytes=1_000, workspace_quota_overrides={"ws_b": 10_000_000})
    export(sqlite_engine, storage, redis_client, "b1", limits, workspace="ws_b", user="u_b")
    export(sqlite_engine, storage, redis_client, "b2", limits, workspace="ws_b", user="u_b")
    assert counter(redis_client, "ws_b") == storage.workspace_export_bytes("ws_b")
    assert limits.quota.quota_for("ws_a") == 1_000 and limits.quota.quota_for("ws_b") == 10_000_000


def test_incomplete_uploads_count_while_they_exist(storage, redis_client):
    usage = WorkspaceUsage(redis_client, storage)
    key = storage.export_key("ws_a", "alerts", "big", "csv", datetime.now(UTC))
    upload = storage.open_upload(key, "text/csv", on_stored=usage.recorder("ws_a"))
    upload._part_bytes = 5 * 1024 * 1024
    upload.write(b"x" * (11 * 1024 * 1024))
    upload._shutdown()  # wait for the parts in flight
    assert counter(redis_client) == 10 * 1024 * 1024 == storage.workspace_export_bytes("ws_a")
    upload.abort()
    assert counter(redis_client) == 0 == storage.workspace_export_bytes("ws_a")


def test_a_workspace_never_counted_is_counted_from_the_listing_once(storage, redis_client):
    storage.client.put_object(Bucket=storage.bucket, Key=storage.exports_prefix("ws_a") + "x.csv", Body=b"12345")
    assert WorkspaceUsage(redis_client, storage).bytes_used("ws_a") == 5 == counter(redis_client)


def test_quota_overrides_are_parsed_strictly():
    assert parse_quota_overrides(" ws_a=10 , ws_b=2_000,") == {"ws_a": 10, "ws_b": 2000}
    for bad in ("ws_a", "ws a=1", "ws_a=0", "ws_a=-5", "ws_a=ten", "../x=1"):
        with pytest.raises(ValueError, match="quota override"):
            parse_quota_overrides(bad)
    settings = Settings.from_env({"ECLIPSE_WORKSPACE_QUOTA_OVERRIDES": "ws_big=10737418240",
                                  "ECLIPSE_WORKSPACE_QUOTA_BYTES": "100"})
    policy = QuotaPolicy(settings.workspace_quota_bytes, settings.workspace_quota_overrides)
    assert (policy.quota_for("ws_big"), policy.quota_for("ws_small")) == (10_737_418_240, 100)
