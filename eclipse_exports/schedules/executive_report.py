"""``executive_report_schedule``: every Monday at 06:00 UTC (``ECLIPSE_REPORT_CRON``), last week's report for every
active workspace.

One evaluation reads the ``active`` workspaces from the source database
(archived and deleted ones get no report), adds any that are not yet in the
``workspaces`` partitions, and asks for the previous week's ``executive_report``
partitions in batches: runs of up to ``ECLIPSE_REPORTS_PER_RUN`` workspaces
that are next to each other in the partition order, each batch one run over
a partition range (a range of a multi-partitioned asset is the product of
the ranges of its dimensions: here one week × consecutive workspaces).

Each run has a stable run key, ``executive_report:{week}:{first}..{last}``
(``executive_report:{week}:{workspace}`` for one), and an evaluation skips
every partition that a run of this schedule already covers for that week, in
this tick or an earlier one, so evaluating a tick again (after a daemon
restart, say) or a second tick for the same week (after a cron change) never
launches a partition twice, even if workspaces changed in between. A
catch-up tick that a cron change makes up is skipped first
(:mod:`~eclipse_exports.schedules.cron_guard`); and a run of this schedule
mails a partition only if no earlier materialization of it was mailed
(``assets/executive_report.py``).
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

from eclipse_exports.assets.executive_report import REPORTS_PER_RUN, SCHEDULE_NAME
from eclipse_exports.config import Settings
from eclipse_exports.jobs import executive_report_job
from eclipse_exports.partitions import executive_report_partitions, workspace_partitions
from eclipse_exports.reports.weekly import FIRST_REPORT_WEEK, ReportWeek
from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.schedules.cron_guard import SCHEDULE_NAME_TAG, SCHEDULED_TIME_TAG, catch_up_skip, checked_cron
from eclipse_exports.source.access import active_workspace_ids

# Dagster 1.13's own run tags (dagster._core.storage.tags): a partition range.
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
WEEK_TAG = "eclipse/report_week"


def report_cron() -> str:
    """The schedule's cron string (UTC): ``ECLIPSE_REPORT_CRON``, default Mondays 06:00."""
    return checked_cron("ECLIPSE_REPORT_CRON", Settings.from_env().report_cron)


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
    """The run of one batch of workspaces for ``week``, with its stable run key (and the week as a tag)."""
    first, last = batch[0], batch[-1]
    if len(batch) == 1:
        return RunRequest(run_key=f"executive_report:{week.key}:{first}", partition_key=f"{week.key}|{first}",
                          tags={WEEK_TAG: week.key})
    return RunRequest(run_key=f"executive_report:{week.key}:{first}..{last}",
                      tags={RANGE_START_TAG: f"{week.key}|{first}", RANGE_END_TAG: f"{week.key}|{last}",
                            WEEK_TAG: week.key})


def launched_workspaces(instance: DagsterInstance, scheduled_at: datetime, week: ReportWeek) -> set[str]:
    """Workspaces of ``week`` that runs of this schedule already cover: of the tick at ``scheduled_at``, or of
    any tick whose run carries the week's tag."""
    runs = [*instance.get_runs(RunsFilter(tags={SCHEDULE_NAME_TAG: SCHEDULE_NAME,
                                                SCHEDULED_TIME_TAG: scheduled_at.isoformat()})),
            *instance.get_runs(RunsFilter(tags={SCHEDULE_NAME_TAG: SCHEDULE_NAME, WEEK_TAG: week.key}))]
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
    cron_schedule=report_cron(),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"{report_cron()} (UTC; ECLIPSE_REPORT_CRON): the previous week's executive_report for every "
                f"active workspace not yet launched for that week, up to {REPORTS_PER_RUN} workspaces per run.",
)
def executive_report_schedule(context: ScheduleEvaluationContext,
                              source_db: SourceDatabaseResource) -> list[RunRequest] | SkipReason:
    scheduled_at = context.scheduled_execution_time.astimezone(UTC)
    skip = catch_up_skip(context.instance, SCHEDULE_NAME, report_cron(), scheduled_at)
    if skip is not None:
        return skip
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
        return SkipReason(f"every active workspace already has a run of this schedule for week {week.key}")
    batches = report_batches(known, wanted, REPORTS_PER_RUN)
    context.log.info(f"week {week.key}: {len(wanted)} workspace(s) in {len(batches)} run(s)")
    return [run_request_for(week, batch) for batch in batches]
