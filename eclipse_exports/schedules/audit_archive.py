"""``export_audit_archive_schedule``: each day at 00:30 UTC (``ECLIPSE_AUDIT_ARCHIVE_CRON``), yesterday's
``export_audit_archive`` partition of every workspace, each its own run with a stable run key, so a tick
evaluated twice archives nothing twice (a complete day never changes anyway)."""

import os
from datetime import timedelta

from dagster import (
    DefaultScheduleStatus,
    MultiPartitionKey,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from eclipse_exports.jobs import export_audit_archive_job

DEFAULT_AUDIT_ARCHIVE_CRON = "30 0 * * *"


def audit_archive_cron() -> str:
    """``ECLIPSE_AUDIT_ARCHIVE_CRON``, default daily at 00:30 UTC."""
    return os.environ.get("ECLIPSE_AUDIT_ARCHIVE_CRON") or DEFAULT_AUDIT_ARCHIVE_CRON


@schedule(
    name="export_audit_archive_schedule",
    job=export_audit_archive_job,
    cron_schedule=audit_archive_cron(),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Archives yesterday's export audit trail of every workspace to S3, chained and signed.",
)
def export_audit_archive_schedule(context: ScheduleEvaluationContext) -> list[RunRequest] | SkipReason:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    workspaces = sorted(context.instance.get_dynamic_partitions("workspaces"))
    if not workspaces:
        return SkipReason("no workspaces yet (the workspaces partitions are empty)")
    return [RunRequest(run_key=f"export_audit_archive:{day}:{workspace_id}",
                       partition_key=MultiPartitionKey({"day": day, "workspace": workspace_id}))
            for workspace_id in workspaces]
