"""``export_run_failure_sensor``: the backstop that marks a job ``failed`` when its run fails.

The export asset records its own failures; this catches the rest (a run that
crashed before the asset's error handling, or failed to start at all). It
never overwrites a job that already reached a terminal status.
"""

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from eclipse_exports.assets.exports import RUN_TAG_PREFIX
from eclipse_exports.config import known_secrets, redact
from eclipse_exports.models import ErrorCode, utc_now
from eclipse_exports.queue.status import TERMINAL_STATUSES
from eclipse_exports.resources import RedisResource


def failure_cause(context: RunFailureSensorContext) -> str:
    """The most specific error text of a failed run: its step failures, else the run failure event."""
    causes = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        chain = []
        while error is not None:
            chain.append(error.message.strip())
            error = error.cause or error.context
        causes.append(": ".join(chain) if chain else event.message or "step failed")
    if not causes:
        causes.append(context.failure_event.message or "run failed")
    return redact("; ".join(causes), known_secrets())


@run_failure_sensor(
    name="export_run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Marks the export job of a failed run as failed (errorCode export_failed) with the cause.",
)
def export_run_failure_sensor(context: RunFailureSensorContext, redis: RedisResource) -> None:
    job_id = context.dagster_run.tags.get(f"{RUN_TAG_PREFIX}job_id")
    if not job_id:
        return
    store = redis.get_status_store()
    if store.status(job_id) in TERMINAL_STATUSES:
        return
    store.failed(job_id, ErrorCode.EXPORT_FAILED, failure_cause(context), utc_now(), context.dagster_run.run_id)
