"""A job queued for a Dagster run retry never waits for one that will not come: export_run_failure_sensor and
export_retry_watch_sensor on a real instance (run retries on), Redis and S3.

Dagster's retry daemon abandons a retry by setting the failed run's ``dagster/will_retry`` tag to ``false``
(``dagster._daemon.auto_run_reexecution``); the tests do the same, on the real instance.
"""

import json
import logging
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon

from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors import export_retry_watch_sensor
from eclipse_exports.sensors.retry_watch import AUTO_RETRY_RUN_ID_TAG, REPORT_AGAIN_AFTER_SECONDS, RETRY_GRACE_SECONDS
from eclipse_exports.sensors.run_failures import REPORTED_AGAIN
from tests.retention.test_failed_runs import fail_like_a_killed_worker, run_failure_sensor_on, started_run

ROOT = Path(__file__).resolve().parents[2]


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
    first_seen = json.loads(watch.cursor)["firstSeen"]["killed"]
    assert before <= first_seen <= time.time()
    assert "1 job(s) waiting" in watch(instance, redis_url, watch.cursor).skip_message  # within the grace
    assert json.loads(watch.cursor)["firstSeen"]["killed"] == first_seen  # the grace counts from the first sighting
    assert JobStatusStore(redis_client).status("killed") == "queued"

    late = json.dumps({"killed": first_seen - RETRY_GRACE_SECONDS})  # the previous version's cursor reads too
    assert "1 failed" in watch(instance, redis_url, late).skip_message
    status = JobStatusStore(redis_client).get("killed")
    assert status["status"] == "failed" and status["errorCode"] == "export_failed" and status["runId"] == run.run_id
    assert status["error"].startswith("Dagster launched no retry of its run in 5 minutes")
    assert "signal 9, SIGKILL" in status["error"]
    assert JobStatusStore(redis_client).awaiting_retry() == {}
    assert json.loads(watch.cursor) == {"firstSeen": {}, "reportedAgain": []}
    assert instance.get_run_by_id(run.run_id).tags.get("dagster/will_retry") == "true"  # Dagster's own, untouched


@pytest.fixture
def daemon_workspace():
    """An instance with run retries and a queued run coordinator (a retry is queued, not started), and the
    workspace Dagster's daemons load (this project's definitions, in process)."""
    overrides = {"run_retries": {"enabled": True, "max_retries": 2},
                 "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}}
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(LoadableTargetOrigin(
        executable_path=sys.executable, module_name="eclipse_exports.definitions", working_directory=str(ROOT)),
        location_name="eclipse_exports"))
    with instance_for_test(overrides=overrides) as inst, create_test_daemon_workspace_context(target, inst) as ctx:
        yield inst, ctx


def test_a_failure_the_retry_daemon_passed_by_is_reported_again_and_the_daemon_retries_it(
        daemon_workspace, redis_client, redis_url):
    """The race seen in CI, replayed with Dagster's own retry daemon (its event-log consumer): the run's failure
    event is stored, the daemon reads it while the run is still STARTED and passes it by, then the run is marked
    failed with ``dagster/will_retry: true`` (what ``DagsterInstance.handle_new_event`` does next). The daemon
    never looks at it again; the watch reports the failure again and the daemon launches the retry."""
    instance, ctx = daemon_workspace
    request_context = ctx.create_request_context()
    location = request_context.get_code_location("eclipse_exports")
    remote_job = location.get_repository("__repository__").get_full_job("alerts_export_job")
    template = started_run(instance)
    plan = location.get_execution_plan(remote_job, template.run_config, step_keys_to_execute=None,
                                       known_state=None)
    run = create_run_for_test(
        instance, job_name=template.job_name, status=DagsterRunStatus.STARTED, run_config=template.run_config,
        tags=template.tags, job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan.execution_plan_snapshot,
        remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
        asset_graph=request_context.asset_graph)
    store = JobStatusStore(redis_client)
    store.write("killed", {"status": "running", "runId": run.run_id, "workspaceId": "ws_a"})
    consumer = EventLogConsumerDaemon()
    list(consumer.run_iteration(ctx))  # its first pass starts its cursor at the end of the event log

    failure = DagsterEvent(DagsterEventType.PIPELINE_FAILURE.value, job_name=run.job_name,
                           message="This run has been marked as failed from outside the execution context.")
    entry = EventLogEntry(error_info=None, level=logging.ERROR, user_message="", run_id=run.run_id,
                          timestamp=time.time(), dagster_event=failure, job_name=run.job_name)
    instance.event_log_storage.store_event(entry)
    list(consumer.run_iteration(ctx))  # reads the failure while the run is still STARTED
    instance.run_storage.handle_run_event(run.run_id, failure, datetime.now(UTC))
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
    store.requeued("killed", run.run_id)  # what export_run_failure_sensor does with such a failure
    list(consumer.run_iteration(ctx))
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert AUTO_RETRY_RUN_ID_TAG not in instance.get_run_by_id(run.run_id).tags  # passed by, for good
    assert len(instance.get_runs()) == 2  # the template and the failed run: no retry

    assert "1 job(s) waiting" in watch(instance, redis_url).skip_message
    first_seen = json.loads(watch.cursor)["firstSeen"]["killed"]
    assert len(instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records) == 1
    late = json.dumps({"firstSeen": {"killed": first_seen - REPORT_AGAIN_AFTER_SECONDS}})
    assert "1 job(s) waiting" in watch(instance, redis_url, late).skip_message
    failures = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    assert len(failures) == 2 and failures[-1].event_log_entry.message.startswith(REPORTED_AGAIN)
    assert json.loads(watch.cursor)["reportedAgain"] == ["killed"]
    assert store.status("killed") == "queued"

    list(consumer.run_iteration(ctx))
    retry_id = instance.get_run_by_id(run.run_id).tags[AUTO_RETRY_RUN_ID_TAG]
    retry = instance.get_run_by_id(retry_id)
    assert retry.parent_run_id == run.run_id and retry.status == DagsterRunStatus.QUEUED
    assert "1 job(s) waiting" in watch(instance, redis_url, watch.cursor).skip_message  # the retry is queued
    assert len(instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records) == 2


def test_a_failure_reported_again_leaves_the_job_to_its_retry(instance, redis_client, redis_url, s3_endpoint,
                                                               bucket):
    run = killed_and_requeued(instance, redis_client, redis_url, s3_endpoint, bucket)
    again = instance.report_run_failed(instance.get_run_by_id(run.run_id), f"{REPORTED_AGAIN}: for the test")
    JobStatusStore(redis_client).retry_settled("killed")
    run_failure_sensor_on(instance, run, again, redis_url, s3_endpoint, bucket)
    assert JobStatusStore(redis_client).status("killed") == "queued"
    assert JobStatusStore(redis_client).awaiting_retry() == {}  # untouched by the second event
