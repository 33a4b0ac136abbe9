"""``dagster_history_cleanup_schedule``: runs ``dagster_history_cleanup_job`` daily at 03:30 UTC.

Each run judges ages as of its scheduled moment; a tick while a history run is still queued or running is
skipped (two passes would delete the same runs).
"""

from dagster import DefaultScheduleStatus, RunRequest, RunsFilter, ScheduleEvaluationContext, SkipReason, schedule

from eclipse_exports.jobs import dagster_history_cleanup_job
from eclipse_exports.schedules.cleanup import UNFINISHED

HISTORY_CLEANUP_CRON = "30 3 * * *"


@schedule(
    name="dagster_history_cleanup_schedule",
    job=dagster_history_cleanup_job,
    cron_schedule=HISTORY_CLEANUP_CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Dagster's own history: finished runs older than ECLIPSE_RUN_HISTORY_DAYS, their event and "
                "compute logs.",
)
def dagster_history_cleanup_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    running = context.instance.get_runs(RunsFilter(job_name=dagster_history_cleanup_job.name, statuses=UNFINISHED),
                                        limit=1)
    if running:
        return SkipReason(f"history clean-up run {running[0].run_id} has not finished yet")
    as_of = context.scheduled_execution_time.isoformat()
    return RunRequest(run_config={"ops": {"dagster_history_cleanup": {"config": {"as_of": as_of}}}},
                      tags={"eclipse/cleanup_as_of": as_of})
