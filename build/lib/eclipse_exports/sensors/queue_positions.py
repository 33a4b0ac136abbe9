"""``export_queue_position_sensor``: every queued export job knows its place in Dagster's run queue.

Every 5 seconds it reads the instance's queued runs (oldest first), the runs in progress and the run queue's
limits (``max_concurrent_runs``, tag concurrency limits), numbers the queued runs in the order they will
start (:func:`eclipse_exports.observability.positions.queue_positions`), writes ``queuePosition`` to each
still-``queued`` job's status hash, tags the run ``eclipse/progress: 3rd in queue`` when its place changed
(the first :data:`TAGGED_PLACES` places; later ones say "over 50th in queue"), removes the place of a job
whose run left the queue without starting the export (starting, or failed and awaiting a retry) and tags
such a run ``left the queue`` until its export reports progress, and records
the queue's size in Redis for the metrics command. Independent of the run launcher: it reads the queue, not the workers.
"""

import json

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from eclipse_exports.assets.exports import PROGRESS_TAG, RUN_TAG_PREFIX
from eclipse_exports.assets.queue_health import ACTIVE_STATUSES, run_queue_limits
from eclipse_exports.observability.health import write_run_counts
from eclipse_exports.observability.positions import QueuedRun, ordinal, queue_positions
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors.export_requests import intake_owner

TAGGED_PLACES = 50
LEFT_THE_QUEUE = "left the queue"


def place_text(position: int) -> str:
    """``3rd in queue`` (the progress tag of a queued run)."""
    return f"{ordinal(position)} in queue" if position <= TAGGED_PLACES else f"over {ordinal(TAGGED_PLACES)} in queue"


@sensor(
    name="export_queue_position_sensor",
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
    description="Writes each queued export job's place in the run queue (queuePosition) and tags its run.",
)
def export_queue_position_sensor(context: SensorEvaluationContext, redis: RedisResource) -> SensorResult:
    instance = context.instance
    queued = list(reversed(instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED]))))
    running = list(reversed(instance.get_runs(RunsFilter(statuses=ACTIVE_STATUSES))))
    positions = queue_positions([QueuedRun(run.run_id, run.tags) for run in queued],
                                [run.tags for run in running], run_queue_limits(instance))
    jobs = {run.tags[f"{RUN_TAG_PREFIX}job_id"]: positions[run.run_id] for run in queued
            if f"{RUN_TAG_PREFIX}job_id" in run.tags}
    last = json.loads(context.cursor) if context.cursor else {}
    tagged, placed = last.get("tags", {}), last.get("jobs", [])
    left = [job_id for job_id in placed if job_id not in jobs]  # their run left the queue: no place any more
    written = redis.get_status_store().queue_positions(jobs, left) if jobs or left else 0
    write_run_counts(redis.get_client(), intake_owner(instance), len(queued), len(running))
    now_tagged = {}
    for run in queued:
        text = place_text(positions[run.run_id])
        if tagged.get(run.run_id) != text:
            instance.add_run_tags(run.run_id, {PROGRESS_TAG: text})
        now_tagged[run.run_id] = text
    gone = [run_id for run_id in tagged if run_id not in now_tagged]
    for run in instance.get_runs(RunsFilter(run_ids=gone)) if gone else []:
        if run.tags.get(PROGRESS_TAG, "").endswith(" in queue"):  # no progress of its own yet: never a stale place
            instance.add_run_tags(run.run_id, {PROGRESS_TAG: LEFT_THE_QUEUE})
    return SensorResult(cursor=json.dumps({"tags": now_tagged, "jobs": sorted(jobs)}), skip_reason=(
        f"{len(queued)} runs queued ({written} export jobs given their place), {len(running)} in progress"))
