"""``executive_report_schedule``: every Monday at 06:00 UTC, last week's report for every active workspace.

One evaluation reads the ``active`` workspaces from the source database
(archived and deleted ones get no report), adds any that are not yet in the
``workspaces`` partitions, and asks for the previous week's ``executive_report``
partitions in batches: runs of up to ``ECLIPSE_REPORTS_PER_RUN`` workspaces
that are next to each other in the partition order, each batch one run over
a partition range (a range of a multi-partitioned asset is the product of
the ranges of its dimensions: here one week × consecutive workspaces).

Each run has a stable run key, ``executive_report:{week}:{first}..{last}``
(``executive_report:{week}:{workspace}`` for one), and an evaluation skips
every partition that a run of the same tick already covers, so evaluating a
tick again (after a daemon restart, say) never launches a partition twice,
even if workspaces changed in between.
"""

from collections.abc import Iterable
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    PartitionKeyRange,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from eclipse_exports.assets.executive_report import REPORTS_PER_RUN
from eclipse_exports.jobs import executive_report_job
from eclipse_exports.partitions import executive_report_partitions, workspace_partitions
from eclipse_exports.reports.weekly import FIRST_REPORT_WEEK, ReportWeek
from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.source.access import active_workspace_ids

SCHEDULE_NAME = "executive_report_schedule"
# Dagster 1.13's own run tags (dagster._core.storage.tags): a partition range, and the schedule tick of a run.
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
SCHEDULE_NAME_TAG, SCHEDULED_TIME_TAG = "dagster/schedule_name", ".dagster/scheduled_execution_time"


def report_batches(partition_order: list[str], wanted: Iterable[str], size: int) -> list[list[str]]:
    """Cut ``wanted`` workspaces into batches of at most ``size`` that are consecutive in ``partition_order``.

    A partition range can only name consecutive partitions, so a workspace
    not wanted (archived, or already launched) ends a batch.
    """
    wanted, batches, current = set(wanted), [], []
    for workspace_id in partition_order:
        if workspace_id in wanted and len(current) < size:
            current.append(workspace_id)
            continue
        if current:
            batches.append(current)
        current = [workspace_id] if workspace_id in wanted else []
    return batches + ([current] if current else [])


def run_request_for(week: ReportWeek, batch: list[str]) -> RunRequest:
    """The run of one batch of workspaces for ``week``, with its stable run key."""
    first, last = batch[0], batch[-1]
    if len(batch) == 1:
        return RunRequest(run_key=f"executive_report:{week.key}:{first}", partition_key=f"{week.key}|{first}")
    return RunRequest(run_key=f"executive_report:{week.key}:{first}..{last}",
                      tags={RANGE_START_TAG: f"{week.key}|{first}", RANGE_END_TAG: f"{week.key}|{last}"})


def launched_workspaces(instance: DagsterInstance, scheduled_at: datetime, week: ReportWeek) -> set[str]:
    """Workspaces of ``week`` that runs of this schedule's tick at ``scheduled_at`` already cover."""
    runs = instance.get_runs(RunsFilter(tags={SCHEDULE_NAME_TAG: SCHEDULE_NAME,
                                              SCHEDULED_TIME_TAG: scheduled_at.isoformat()}))
    covered = set()
    for run in runs:
        start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
        keys = ([run.tags[PARTITION_TAG]] if PARTITION_TAG in run.tags and not start else
                executive_report_partitions.get_partition_keys_in_range(
                    PartitionKeyRange(start, end), dynamic_partitions_store=instance) if start and end else [])
        for key in keys:
            week_key, _, workspace_id = str(key).partition("|")
            if week_key == week.key:
                covered.add(workspace_id)
    return covered


@schedule(
    name=SCHEDULE_NAME,
    job=executive_report_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Mondays 06:00 UTC: the previous week's executive_report for every active workspace, "
                f"up to {REPORTS_PER_RUN} workspaces per run.",
)
def executive_report_schedule(context: ScheduleEvaluationContext,
                              source_db: SourceDatabaseResource) -> list[RunRequest] | SkipReason:
    scheduled_at = context.scheduled_execution_time.astimezone(UTC)
    week = ReportWeek.last_complete(scheduled_at)
    if week.key < FIRST_REPORT_WEEK:
        return SkipReason(f"week {week.key} is before the first report week {FIRST_REPORT_WEEK}")
    with source_db.get_engine().connect() as conn:
        active = active_workspace_ids(conn)
    if not active:
        return SkipReason("no active workspace")
    known = context.instance.get_dynamic_partitions(workspace_partitions.name)
    missing = [w for w in active if w not in set(known)]
    if missing:
        context.instance.add_dynamic_partitions(workspace_partitions.name, missing)
        known = [*known, *missing]
    wanted = set(active) - launched_workspaces(context.instance, scheduled_at, week)
    if not wanted:
        return SkipReason(f"every active workspace already has a run for week {week.key} in this tick")
    batches = report_batches(known, wanted, REPORTS_PER_RUN)
    context.log.info(f"week {week.key}: {len(wanted)} workspace(s) in {len(batches)} run(s)")
    return [run_request_for(week, batch) for batch in batches]
