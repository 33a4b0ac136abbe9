"""Purge of deleted workspaces: purge_workspace and workspace_purge_sensor on a real S3, Redis and source database.

The hand-made dataset has ``ws_del`` (deleted), ``ws_arch`` (archived) and ``ws_a`` (active). The UI's
pages after a partition is deleted are checked in tests/retention/test_retention_e2e.py.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context, instance_for_test

from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource, SourceDatabaseResource
from eclipse_exports.retention.cleanup import run_cleanup
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.retention.purge import purge_workspace, purged_workspaces
from eclipse_exports.sensors import workspace_purge_sensor
from tests.retention.test_retention import all_keys, completed, put_all, status

STAMP = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def resources(storage, redis_url, sqlite_engine, s3_endpoint):
    """The purge sensor's resources on the test services (the hand-made dataset as the source database)."""
    return {"source_db": SourceDatabaseResource(url=str(sqlite_engine.url)),
            "redis": RedisResource(url=redis_url),
            "storage": ExportStorageResource(bucket=storage.bucket, prefix="tenant-files", endpoint_url=s3_endpoint),
            "limits": ExportLimitsResource()}


@pytest.fixture
def files(storage, redis_client):
    """Exports, a report, an odd key and an upload in ws_del; exports in ws_a and ws_arch; a foreign key."""
    def exports(ws, n):
        return {storage.export_key(ws, "alerts", f"{ws}-{i}", "csv", STAMP): b"a\n" for i in range(n)}

    doomed = {**exports("ws_del", 30), storage.report_key("ws_del", date(2026, 11, 2)): b"<html>",
              storage.workspace_prefix("ws_del") + "notes/odd.txt": b"?"}
    kept = {**exports("ws_a", 3), **exports("ws_arch", 3), "tenant-files/workspaces/ws_dele/x.csv": b"?",
            "elsewhere/workspaces/ws_del/exports/x.csv": b"?"}
    put_all(storage, {**doomed, **kept})
    completed(redis_client, storage, [k for k in {**doomed, **kept} if storage.parse_key(k)
                                      and storage.parse_key(k).kind == "export"])
    upload_key = storage.export_key("ws_del", "alerts", "mid-export", "csv", STAMP)
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key=upload_key)
    redis_client.set(workspace_usage_key("ws_del"), 60)
    return doomed, kept


def test_purge_removes_everything_under_the_workspace_prefix_and_nothing_else(storage, redis_client, files):
    doomed, kept = files
    outcome = purge_workspace(storage, redis_client, "ws_del")
    assert outcome.complete and outcome.summary.ok
    assert all_keys(storage) == set(kept) and storage.pending_multipart_uploads() == []
    assert outcome.summary.files_removed == len(doomed) and outcome.summary.uploads_aborted == 1
    assert status(redis_client, "ws_del-7")["status"] == "expired" and "downloadUrl" not in status(
        redis_client, "ws_del-7")
    assert status(redis_client, "ws_a-1")["status"] == "completed"
    assert purged_workspaces(redis_client) == {"ws_del"} and redis_client.get(workspace_usage_key("ws_del")) is None

    # A still-running export finishing after the purge: the next clean-up removes its file whatever its age.
    late = storage.export_key("ws_del", "alerts", "late", "csv", STAMP)
    storage.client.put_object(Bucket=storage.bucket, Key=late, Body=b"a\n")
    summary = run_cleanup(storage, redis_client, RetentionPolicy(), datetime.now(UTC))
    assert summary.ok and summary.files_removed == 1 and not storage.exists(late)


def test_the_sensor_purges_deleted_workspaces_removes_their_partition_and_spares_archived_ones(
        storage, redis_client, resources, files):
    doomed, kept = files
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_a", "ws_arch", "ws_del"])
        result = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, SensorResult)
        [delete] = result.dynamic_partitions_requests
        assert (delete.partitions_def_name, list(delete.partition_keys)) == ("workspaces", ["ws_del"])
        assert all_keys(storage) == set(kept)

        # The removal did not land yet (a failed tick): it is asked for again, without purging twice.
        again = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert list(again.dynamic_partitions_requests[0].partition_keys) == ["ws_del"]
        instance.delete_dynamic_partition("workspaces", "ws_del")
        done = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(done, SkipReason)
        assert sorted(instance.get_dynamic_partitions("workspaces")) == ["ws_a", "ws_arch"]

    # Archived workspaces keep their files until retention takes them.
    arch = {k for k in kept if "/ws_arch/" in k}
    run_cleanup(storage, redis_client, RetentionPolicy(), datetime.now(UTC) + timedelta(hours=71))
    assert arch <= all_keys(storage)
    run_cleanup(storage, redis_client, RetentionPolicy(), datetime.now(UTC) + timedelta(hours=73))
    assert not arch & all_keys(storage)


def test_an_operator_materialization_of_a_deleted_workspace_writes_nothing(storage, redis_client, resources):
    from dagster import DagsterInstance, materialize

    from eclipse_exports.assets import EXPORT_ASSETS

    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_del"])
        result = materialize([EXPORT_ASSETS[0]], partition_key="ws_del", instance=instance, resources=resources,
                             raise_on_error=False)
    assert not result.success
    status_of_run = status(redis_client, f"dagster-{result.run_id}")
    assert (status_of_run["status"], status_of_run["errorCode"]) == ("failed", "workspace_inactive")
    assert all_keys(storage) == set()


def test_a_partition_an_unfinished_backfill_targets_stays_until_it_ends(storage, resources, files):
    import time as clock

    from dagster import AssetKey
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    from eclipse_exports.definitions import defs

    with instance_for_test() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_a", "ws_del"])
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="bf1", asset_graph=defs.resolve_asset_graph(), partition_names=["ws_a", "ws_del"],
            asset_selection=[AssetKey("alerts_export")], backfill_timestamp=clock.time(), tags={},
            dynamic_partitions_store=instance, all_partitions=False, title=None, description=None, run_config=None)
        instance.add_backfill(backfill)
        waiting = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(waiting, SkipReason)
        assert not [k for k in all_keys(storage) if k.startswith(storage.workspace_prefix("ws_del"))]  # at once
        instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
        done = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert list(done.dynamic_partitions_requests[0].partition_keys) == ["ws_del"]


@pytest.fixture
def proxy(s3_endpoint):
    from tests.s3_fault_proxy import S3FaultProxy

    with S3FaultProxy(s3_endpoint) as running:
        yield running


def test_a_purge_s3_refuses_is_not_recorded_and_keeps_its_partition_until_it_completes(
        storage, redis_client, resources, files, proxy):
    doomed, kept = files
    through_proxy = {**resources, "storage": ExportStorageResource(bucket=storage.bucket, prefix="tenant-files",
                                                                   endpoint_url=proxy.url)}
    proxy.inject(method="POST", query=r"(^|&)delete(=|&|$)", body=b"/ws_del/", status=500)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_a", "ws_del"])
        refused = workspace_purge_sensor(build_sensor_context(instance=instance, resources=through_proxy))
        assert isinstance(refused, SkipReason) and "nothing yet" in refused.skip_message
        assert "ws_del" not in purged_workspaces(redis_client)
        assert set(doomed) <= all_keys(storage)
        assert sorted(instance.get_dynamic_partitions("workspaces")) == ["ws_a", "ws_del"]

        proxy.clear()
        done = workspace_purge_sensor(build_sensor_context(instance=instance, resources=through_proxy))
        assert list(done.dynamic_partitions_requests[0].partition_keys) == ["ws_del"]
        assert purged_workspaces(redis_client) == {"ws_del"} and all_keys(storage) == set(kept)


def test_a_purge_cut_off_by_its_time_limit_is_not_recorded_and_keeps_its_partition(
        storage, redis_client, resources, files, proxy, monkeypatch):
    import time

    from eclipse_exports.sensors import workspace_purge

    doomed, kept = files
    # Every listing takes 0.6 s; the tick's budget is 0.5 s: the purge stops after its first page.
    proxy.inject(method="GET", query=r"list-type=2|uploads", delay=0.6)
    slow = ExportStorageResource(bucket=storage.bucket, prefix="tenant-files", endpoint_url=proxy.url)
    outcome = purge_workspace(slow.get_storage(), redis_client, "ws_del", deadline=time.monotonic() + 0.5)
    assert not outcome.complete and "ws_del" not in purged_workspaces(redis_client)
    monkeypatch.setattr(workspace_purge, "TICK_TIME_BUDGET_SECONDS", 0.5)
    storage.client.put_object(Bucket=storage.bucket, Key=next(iter(doomed)), Body=b"again")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_a", "ws_del"])
        cut = workspace_purge_sensor(build_sensor_context(instance=instance, resources={**resources,
                                                                                       "storage": slow}))
        assert isinstance(cut, SkipReason), cut
        assert "ws_del" not in purged_workspaces(redis_client)
        assert "ws_del" in instance.get_dynamic_partitions("workspaces")
        proxy.clear()
        monkeypatch.setattr(workspace_purge, "TICK_TIME_BUDGET_SECONDS", 40.0)
        done = workspace_purge_sensor(build_sensor_context(instance=instance, resources=resources))
        assert list(done.dynamic_partitions_requests[0].partition_keys) == ["ws_del"]
    assert purged_workspaces(redis_client) == {"ws_del"} and all_keys(storage) == set(kept)
