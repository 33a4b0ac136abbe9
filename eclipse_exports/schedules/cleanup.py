"""``export_cleanup_schedule``: runs ``export_cleanup_job`` hourly (``ECLIPSE_CLEANUP_CRON``, UTC).

Each run judges ages as of its scheduled moment, so a run that waited in the
queue deletes exactly what was due at its tick. A tick while a clean-up run is
still queued or running is skipped (two passes would race for the same keys),
and so is a catch-up tick a cron change makes up (:mod:`~eclipse_exports.schedules.cron_guard`).
"""

import os

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from eclipse_exports.jobs import export_cleanup_job
from eclipse_exports.schedules.cron_guard import catch_up_skip, checked_cron

DEFAULT_CLEANUP_CRON = "0 * * * *"
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED]


def cleanup_cron() -> str:
    """The schedule's cron string: ``ECLIPSE_CLEANUP_CRON``, default hourly on the hour."""
    return checked_cron("ECLIPSE_CLEANUP_CRON", os.environ.get("ECLIPSE_CLEANUP_CRON") or DEFAULT_CLEANUP_CRON)


SCHEDULE_NAME = "export_cleanup_schedule"


@schedule(
    name=SCHEDULE_NAME,
    job=export_cleanup_job,
    cron_schedule=cleanup_cron(),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retention clean-up: expired exports and reports, stale uploads, streams, usage counters.",
)
def export_cleanup_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    skip = catch_up_skip(context.instance, SCHEDULE_NAME, cleanup_cron(), context.scheduled_execution_time)
    if skip is not None:
        return skip
    running = context.instance.get_runs(RunsFilter(job_name=export_cleanup_job.name, statuses=UNFINISHED), limit=1)
    if running:
        return SkipReason(f"clean-up run {running[0].run_id} has not finished yet")
    as_of = context.scheduled_execution_time.isoformat()
    return RunRequest(run_config={"ops": {"export_cleanup": {"config": {"as_of": as_of}}}},
                      tags={"eclipse/cleanup_as_of": as_of})
