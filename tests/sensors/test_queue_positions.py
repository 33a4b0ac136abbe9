"""export_queue_position_sensor on a Dagster instance holding real queued runs, with the project's run queue."""

import json

import pytest
from dagster import DagsterRunStatus, build_sensor_context, job, op
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import instance_for_test

from eclipse_exports.models import ExportRequest, utc_now
from eclipse_exports.observability.health import read_run_counts
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors import export_queue_position_sensor

ORIGIN = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("eclipse_exports"), "__repository__"),
                         "export_like")
RUN_QUEUE = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                 "config": {"max_concurrent_runs": 4, "tag_concurrency_limits": [
                                     {"key": "eclipse/workspace_id", "value": {"applyLimitPerUniqueValue": True},
                                      "limit": 2}]}}}


@op
def noop() -> None:
    pass


@job
def export_like() -> None:
    noop()


@pytest.fixture
def instance():
    with instance_for_test(overrides=RUN_QUEUE) as inst:  # a persistent instance with the project's run queue
        yield inst


def queue_job(instance, store, job_id: str, workspace: str, status: DagsterRunStatus):
    store.queued(ExportRequest.from_payload(json.dumps({
        "id": job_id, "workspaceId": workspace, "userId": "u", "resourceType": "alerts", "format": "csv"})),
        utc_now(), "1-0")
    return instance.create_run_for_job(export_like, status=status, remote_job_origin=ORIGIN, tags={
        "eclipse/job_id": job_id, "eclipse/workspace_id": workspace})


def test_queued_jobs_get_their_place_and_lose_it_when_their_run_leaves_the_queue(instance, redis_url, redis_client):
    store = JobStatusStore(redis_client)
    for n in range(2):  # ws_a has its two runs going
        queue_job(instance, store, f"busy-{n}", "ws_a", DagsterRunStatus.STARTED)
    runs = {job_id: queue_job(instance, store, job_id, workspace, DagsterRunStatus.QUEUED)
            for job_id, workspace in (("a-1", "ws_a"), ("b-1", "ws_b"), ("a-2", "ws_a"))}
    resources = {"redis": RedisResource(url=redis_url)}
    result = export_queue_position_sensor(build_sensor_context(instance=instance, resources=resources))
    places = {job_id: store.get(job_id).get("queuePosition") for job_id in runs}
    assert places == {"b-1": "1", "a-1": "2", "a-2": "3"}  # ws_b's starts first: ws_a is at its limit
    assert instance.get_run_by_id(runs["b-1"].run_id).tags["eclipse/progress"] == "1st in queue"
    assert read_run_counts(redis_client) == (3, 2)

    instance.run_storage.handle_run_event(runs["b-1"].run_id, _starting_event(runs["b-1"]))  # the daemon starts it
    export_queue_position_sensor(build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
    assert "queuePosition" not in store.get("b-1") and store.get("b-1")["status"] == "queued"
    assert instance.get_run_by_id(runs["b-1"].run_id).tags["eclipse/progress"] == "left the queue"
    assert store.get("a-1")["queuePosition"] == "1" and store.get("a-2")["queuePosition"] == "2"


def _starting_event(run):
    from dagster._core.events import DagsterEvent, DagsterEventType

    return DagsterEvent(DagsterEventType.RUN_STARTING.value, job_name=run.job_name)
