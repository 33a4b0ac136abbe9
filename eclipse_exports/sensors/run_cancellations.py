"""``export_run_canceled_sensor``: an export run an operator terminated (the UI's "Terminate") fails its job with
a readable cause and leaves no upload or partial file behind, as a failed run does (``run_failures.py``)."""

from dagster import DagsterRunStatus, DefaultSensorStatus, RunStatusSensorContext, run_status_sensor

from eclipse_exports.assets.exports import ERROR_CODE_TAG, RUN_TAG_PREFIX
from eclipse_exports.models import ErrorCode, utc_now
from eclipse_exports.queue.status import TERMINAL_STATUSES
from eclipse_exports.resources import ExportStorageResource, RedisResource
from eclipse_exports.sensors.run_failures import discard_leftovers

CANCELED_CAUSE = ("the export was stopped by an operator (its Dagster run {run_id} was terminated); its partial file "
                  "was removed. Request the export again.")


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    name="export_run_canceled_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Marks the export job of a terminated run as failed (errorCode export_failed) with the cause, "
                "and removes its incomplete upload or partial file.",
)
def export_run_canceled_sensor(context: RunStatusSensorContext, redis: RedisResource,
                               storage: ExportStorageResource) -> None:
    run = context.dagster_run
    job_id = run.tags.get(f"{RUN_TAG_PREFIX}job_id")
    if not job_id or not discard_leftovers(context, job_id, redis, storage):
        return
    store = redis.get_status_store()
    if store.status(job_id) in TERMINAL_STATUSES:
        return
    store.failed(job_id, ErrorCode.EXPORT_FAILED, CANCELED_CAUSE.format(run_id=run.run_id), utc_now(), run.run_id)
    context.instance.add_run_tags(run.run_id, {ERROR_CODE_TAG: ErrorCode.EXPORT_FAILED.value})
