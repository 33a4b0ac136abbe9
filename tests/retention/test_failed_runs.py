"""A failed export run leaves nothing behind: export_run_failure_sensor on a real instance, Redis and S3.

The run is failed the way Dagster's code server fails a run whose worker
died: an engine event with the exit ("terminated by signal 9 (SIGKILL)"), then
a run failure event with the generic message. The real kill is in
tests/retention/test_retention_e2e.py.
"""

import uuid
from datetime import UTC, datetime

import pytest
from dagster import DagsterRun, DagsterRunStatus, build_run_status_sensor_context, instance_for_test

from eclipse_exports.assets import ExportConfig
from eclipse_exports.assets.exports import run_tags
from eclipse_exports.exports.job_file import job_file_key
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import ExportStorageResource, RedisResource
from eclipse_exports.sensors import export_run_failure_sensor
from eclipse_exports.sensors.run_failures import worker_death_cause

PICKED_UP = datetime(2026, 11, 30, 10, 0, 7, tzinfo=UTC)
REQUEST = ExportRequest.from_payload('{"id":"killed","workspaceId":"ws_a","userId":"u_analyst",'
                                     '"resourceType":"alerts","format":"csv"}')


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def storage(s3_endpoint, bucket):
    return ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint).get_storage()


def started_run(instance) -> DagsterRun:
    config = ExportConfig.from_request(REQUEST, PICKED_UP).model_dump()
    run = DagsterRun(job_name="alerts_export_job", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                     run_config={"ops": {"alerts_export": {"config": config}}},
                     tags={**run_tags(REQUEST), "dagster/partition": "ws_a"})
    return instance.add_run(run)


def run_failure_sensor_on(instance, run: DagsterRun, failure, redis_url, s3_endpoint, bucket) -> None:
    """Evaluate ``export_run_failure_sensor`` on ``failure`` (the run's failure event), as Dagster would."""
    context = build_run_status_sensor_context(
        sensor_name="export_run_failure_sensor", dagster_event=failure, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        resources={"redis": RedisResource(url=redis_url),
                   "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint)},
    ).for_run_failure()
    export_run_failure_sensor(context)


def fail_like_a_killed_worker(instance, run: DagsterRun, redis_url, s3_endpoint, bucket) -> None:
    instance.report_engine_event(f"Run execution process for {run.run_id} was terminated by signal 9 (SIGKILL).",
                                 run)
    run_failure_sensor_on(instance, run, instance.report_run_failed(run), redis_url, s3_endpoint, bucket)


def test_a_killed_workers_upload_is_aborted_and_its_job_fails_readably(instance, storage, redis_client, redis_url,
                                                                        s3_endpoint, bucket):
    run = started_run(instance)
    key = job_file_key(storage, REQUEST, PICKED_UP)
    upload = storage.client.create_multipart_upload(Bucket=bucket, Key=key)
    storage.client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"r" * 4096)
    redis_client.set(workspace_usage_key("ws_a"), 4096)
    JobStatusStore(redis_client).write("killed", {"status": "running", "runId": run.run_id, "progress": 24,
                                                  "rowsWritten": 120_000, "rowCount": 500_000})

    fail_like_a_killed_worker(instance, run, redis_url, s3_endpoint, bucket)

    assert storage.pending_multipart_uploads() == [] and int(redis_client.get(workspace_usage_key("ws_a"))) == 0
    status = JobStatusStore(redis_client).get("killed")
    assert status["status"] == "failed" and status["errorCode"] == "export_failed"
    assert status["error"].startswith("the export worker stopped unexpectedly (signal 9, SIGKILL)")
    assert "Request the export again" in status["error"] and "outside the execution context" not in status["error"]
    assert not {"rowCount", "byteSize", "filePath", "downloadUrl", "expiresAt"} & set(status)
    assert status["rowsWritten"] == "120000" and status["runId"] == run.run_id
    assert instance.get_run_by_id(run.run_id).tags.get("eclipse/error_code") == "export_failed"  # filterable


def test_a_file_completed_just_before_the_worker_died_is_deleted(instance, storage, redis_client, redis_url,
                                                                  s3_endpoint, bucket):
    run = started_run(instance)
    key = job_file_key(storage, REQUEST, PICKED_UP)
    storage.client.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n")
    JobStatusStore(redis_client).write("killed", {"status": "running", "runId": run.run_id})
    fail_like_a_killed_worker(instance, run, redis_url, s3_endpoint, bucket)
    assert not storage.exists(key)
    assert JobStatusStore(redis_client).get("killed")["status"] == "failed"


def test_a_job_another_run_has_taken_over_is_left_alone(instance, storage, redis_client, redis_url, s3_endpoint,
                                                        bucket):
    run = started_run(instance)
    key = job_file_key(storage, REQUEST, PICKED_UP)
    upload = storage.client.create_multipart_upload(Bucket=bucket, Key=key)
    JobStatusStore(redis_client).write("killed", {"status": "running", "runId": "the-retry"})
    fail_like_a_killed_worker(instance, run, redis_url, s3_endpoint, bucket)
    assert [u["UploadId"] for u in storage.pending_multipart_uploads()] == [upload["UploadId"]]
    assert JobStatusStore(redis_client).get("killed")["status"] == "running"


def test_worker_death_causes_read_as_sentences():
    assert worker_death_cause("x", ["Run execution process for r unexpectedly exited with code 3."]).startswith(
        "the export worker stopped unexpectedly (exit code 3)")
    assert "signal 15, SIGTERM" in worker_death_cause("", ["…was terminated by signal 15 (SIGTERM)."])
    assert "run monitoring" in worker_death_cause("Detected run worker status FAILED. Marking run r as failed.", [])
    assert "stopped from outside" in worker_death_cause(
        "This run has been marked as failed from outside the execution context.", [])
    assert worker_death_cause("Execution of step failed", []) is None
