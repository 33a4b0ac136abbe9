"""One job, one object: re-executing a completed export run (Dagster's own re-execution) replaces its file."""

from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, ReexecutionOptions, execute_job, instance_for_test, reconstructable

from eclipse_exports.assets import ExportConfig
from eclipse_exports.assets.exports import run_tags
from eclipse_exports.definitions import defs
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from eclipse_exports.storage.keys import METADATA_JOB_ID

PICKED_UP = datetime(2026, 11, 30, 8, 15, 42, tzinfo=UTC)


def alerts_export_job():
    """Module-scope factory so that execute_job can reconstruct the job (as the run worker does)."""
    return defs.resolve_job_def("alerts_export_job")


@pytest.fixture
def deployment_env(monkeypatch, sqlite_engine, redis_url, s3_endpoint, bucket, redis_client):
    monkeypatch.setenv("ECLIPSE_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("ECLIPSE_REDIS_URL", redis_url)
    monkeypatch.setenv("ECLIPSE_S3_BUCKET", bucket)
    monkeypatch.setenv("ECLIPSE_S3_PREFIX", "")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return ExportStorage(make_s3_client(s3_endpoint), bucket)


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        inst.add_dynamic_partitions("workspaces", ["ws_a"])
        yield inst


def objects_of(storage: ExportStorage, job_id: str) -> list[dict]:
    return [o for o in storage.iter_objects("") if storage.parse_key(o["Key"]).job_id == job_id]


def run_export_job(instance: DagsterInstance, request: ExportRequest, **kwargs):
    config = ExportConfig.from_request(request, PICKED_UP).model_dump()
    return execute_job(reconstructable(alerts_export_job), instance,
                       run_config={"ops": {"alerts_export": {"config": config}}},
                       tags={**run_tags(request), "dagster/partition": request.workspace_id}, **kwargs)


def test_reexecuting_a_completed_run_replaces_the_file(deployment_env, instance, redis_client):
    storage = deployment_env
    request = ExportRequest.from_payload('{"id":"once","workspaceId":"ws_a","userId":"u_analyst",'
                                         '"resourceType":"alerts","format":"csv"}')
    with run_export_job(instance, request) as first:
        assert first.success
        first_run_id = first.run_id
    status = JobStatusStore(redis_client).get("once")
    assert status["status"] == "completed" and status["filePath"].endswith("/20261130T081542Z-alerts-once.csv")
    head = storage.client.head_object(Bucket=storage.bucket, Key=status["filePath"])
    assert head["Metadata"][METADATA_JOB_ID] == "once" and head["Metadata"]["eclipse-workspace-id"] == "ws_a"

    # As the UI's "Re-execute all" does: the parent's run config and tags (partition included), a new run.
    parent = instance.get_run_by_id(first_run_id)
    tags = {k: v for k, v in parent.tags.items() if not k.startswith("dagster/") or k == "dagster/partition"}
    with execute_job(reconstructable(alerts_export_job), instance, run_config=parent.run_config, tags=tags,
                     reexecution_options=ReexecutionOptions(parent_run_id=first_run_id)) as again:
        assert again.success and again.run_id != first_run_id
        assert instance.get_run_by_id(again.run_id).parent_run_id == first_run_id
        again_run_id = again.run_id

    objects = objects_of(storage, "once")
    assert [o["Key"] for o in objects] == [status["filePath"]]
    replaced = JobStatusStore(redis_client).get("once")
    assert replaced["runId"] == again_run_id and replaced["filePath"] == status["filePath"]
    assert int(redis_client.get(workspace_usage_key("ws_a"))) == objects[0]["Size"] == int(replaced["byteSize"])


def test_a_file_of_the_job_under_another_key_is_deleted_once_the_new_one_is_complete(
        deployment_env, instance, redis_client):
    storage = deployment_env
    request = ExportRequest.from_payload('{"id":"legacy","workspaceId":"ws_a","userId":"u_analyst",'
                                         '"resourceType":"alerts","format":"csv"}')
    # As written by a run before keys were dated by the request: stamped with that run's start.
    earlier = storage.export_key("ws_a", "alerts", "legacy", "csv", datetime(2026, 11, 30, 8, 16, 3, tzinfo=UTC))
    storage.client.put_object(Bucket=storage.bucket, Key=earlier, Body=b"id\n1\n")
    redis_client.set(workspace_usage_key("ws_a"), 5)
    JobStatusStore(redis_client).write("legacy", {"status": "completed", "filePath": earlier})
    with run_export_job(instance, request) as result:
        assert result.success
    objects = objects_of(storage, "legacy")
    assert [o["Key"] for o in objects] == [JobStatusStore(redis_client).get("legacy")["filePath"]] != [earlier]
    assert int(redis_client.get(workspace_usage_key("ws_a"))) == objects[0]["Size"]


def test_the_sensor_dates_the_run_by_the_pick_up_time_it_records(redis_client, redis_url, sqlite_engine):
    from dagster import build_sensor_context

    from eclipse_exports.queue.keys import REQUEST_STREAM
    from eclipse_exports.resources import RedisResource, SourceDatabaseResource
    from eclipse_exports.sensors import export_request_sensor

    redis_client.xadd(REQUEST_STREAM, {"payload": '{"id":"dated","workspaceId":"ws_a","userId":"u_analyst",'
                                                  '"resourceType":"alerts","format":"csv"}'})
    with instance_for_test() as instance:
        result = export_request_sensor(build_sensor_context(instance=instance, resources={
            "redis": RedisResource(url=redis_url), "source_db": SourceDatabaseResource(url=str(sqlite_engine.url))}))
    picked_up = result.run_requests[0].run_config["ops"]["alerts_export"]["config"]["picked_up_at"]
    created = JobStatusStore(redis_client).get("dated")["createdAt"]
    assert datetime.fromisoformat(picked_up).strftime("%Y-%m-%dT%H:%M:%SZ") == created
