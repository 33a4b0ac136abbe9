"""``export_run_canceled_sensor``: an export run an operator terminated (the UI's "Terminate") fails its job with
a readable cause and leaves no upload or partial file behind, as a failed run does (``run_failures.py``)."""

from dagster import DagsterRunStatus, DefaultSensorStatus, RunStatusSensorContext, run_status_sensor

from eclipse_exports.resources import ExportStorageResource, RedisResource
from eclipse_exports.sensors.run_failures import fail_export_job, unfinished_export_job

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
    unfinished = unfinished_export_job(context, redis, storage)
    if unfinished is not None:
        store, job_id = unfinished
        fail_export_job(context, store, job_id, CANCELED_CAUSE.format(run_id=context.dagster_run.run_id))
