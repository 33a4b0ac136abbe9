"""A job queued for a Dagster run retry never waits for one that will not come: export_run_failure_sensor and
export_retry_watch_sensor on a real instance (run retries on), Redis and S3.

Dagster's retry daemon abandons a retry by setting the failed run's ``dagster/will_retry`` tag to ``false``
(``dagster._daemon.auto_run_reexecution``); the tests do the same, on the real instance.
"""

import json
import time
import uuid

import pytest
from dagster import DagsterRun, DagsterRunStatus, build_sensor_context, instance_for_test

from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors import export_retry_watch_sensor
from eclipse_exports.sensors.retry_watch import AUTO_RETRY_RUN_ID_TAG, RETRY_GRACE_SECONDS
from tests.retention.test_failed_runs import fail_like_a_killed_worker, started_run


@pytest.fixture
def instance():
    with instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as inst:
        yield inst


def watch(instance, redis_url, cursor: str | None = None):
    context = build_sensor_context(instance=instance, resources={"redis": RedisResource(url=redis_url)},
                                   cursor=cursor)
    result = export_retry_watch_sensor(context)
    watch.cursor = context.cursor
    return result


def killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket) -> DagsterRun:
    run = started_run(instance)
    JobStatusStore(redis_client).write("killed", {"status": "running", "runId": run.run_id, "workspaceId": "ws_a"})
    fail_like_a_killed_worker(instance, run, redis_url, s3_endpoint, bucket)
    assert instance.get_run_by_id(run.run_id).tags["dagster/will_retry"] == "true"
    assert JobStatusStore(redis_client).status("killed") == "queued"
    assert JobStatusStore(redis_client).awaiting_retry() == {"killed": run.run_id}
    return run


def retry_of(instance, run: DagsterRun, status: DagsterRunStatus) -> DagsterRun:
    retry = instance.add_run(DagsterRun(job_name=run.job_name, run_id=str(uuid.uuid4()), status=status,
                                        tags={**run.tags, "dagster/parent_run_id": run.run_id}))
    instance.add_run_tags(run.run_id, {AUTO_RETRY_RUN_ID_TAG: retry.run_id})
    return retry


def test_a_job_whose_retry_dagster_abandons_fails_with_the_cause(instance, redis_client, redis_url, s3_endpoint,
                                                                 bucket):
    run = killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket)
    assert "1 job(s) waiting" in watch(instance, redis_url).skip_message
    assert JobStatusStore(redis_client).status("killed") == "queued"

    instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})  # what the retry daemon does on giving up
    assert "1 failed" in watch(instance, redis_url).skip_message
    status = JobStatusStore(redis_client).get("killed")
    assert status["status"] == "failed" and status["errorCode"] == "export_failed" and status["runId"] == run.run_id
    assert status["error"].startswith("Dagster could not launch the retry of its run")
    assert "signal 9, SIGKILL" in status["error"] and "Request the export again" in status["error"]
    assert JobStatusStore(redis_client).awaiting_retry() == {}
    assert instance.get_run_by_id(run.run_id).tags.get("eclipse/error_code") == "export_failed"


def test_a_started_retry_takes_the_job_over(instance, redis_client, redis_url, s3_endpoint, bucket):
    run = killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket)
    created = retry_of(instance, run, DagsterRunStatus.NOT_STARTED)  # created, not yet submitted or dequeued
    assert "1 job(s) waiting" in watch(instance, redis_url).skip_message
    instance.delete_run(created.run_id)
    retry_of(instance, run, DagsterRunStatus.STARTED)
    assert "1 handed over" in watch(instance, redis_url).skip_message
    assert JobStatusStore(redis_client).awaiting_retry() == {}
    assert JobStatusStore(redis_client).status("killed") == "queued"  # the retry's run reports from here on


def test_a_canceled_retry_fails_the_job(instance, redis_client, redis_url, s3_endpoint, bucket):
    run = killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket)
    retry = retry_of(instance, run, DagsterRunStatus.CANCELED)
    watch(instance, redis_url)
    status = JobStatusStore(redis_client).get("killed")
    assert status["status"] == "failed" and f"the retry of its run ({retry.run_id}) was canceled" in status["error"]


def test_a_retry_dagster_never_launches_fails_the_job_after_the_grace(instance, redis_client, redis_url,
                                                                      s3_endpoint, bucket):
    """The retry daemon passed the failure by: the tag still says it will retry, and no retry run ever comes."""
    run = killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket)
    before = time.time()
    assert "1 job(s) waiting" in watch(instance, redis_url).skip_message
    first_seen = json.loads(watch.cursor)["killed"]
    assert before <= first_seen <= time.time()
    assert "1 job(s) waiting" in watch(instance, redis_url, watch.cursor).skip_message  # within the grace
    assert json.loads(watch.cursor)["killed"] == first_seen  # the grace counts from the first sighting
    assert JobStatusStore(redis_client).status("killed") == "queued"

    late = json.dumps({"killed": first_seen - RETRY_GRACE_SECONDS})
    assert "1 failed" in watch(instance, redis_url, late).skip_message
    status = JobStatusStore(redis_client).get("killed")
    assert status["status"] == "failed" and status["errorCode"] == "export_failed" and status["runId"] == run.run_id
    assert status["error"].startswith("Dagster launched no retry of its run in 5 minutes")
    assert "signal 9, SIGKILL" in status["error"]
    assert JobStatusStore(redis_client).awaiting_retry() == {} and json.loads(watch.cursor) == {}
    assert instance.get_run_by_id(run.run_id).tags.get("dagster/will_retry") == "true"  # Dagster's own, untouched
