"""Dagster jobs, all run in-process: one asset job per exported resource (launched by the request sensor),
``executive_report_job`` (launched by ``executive_report_schedule``), ``export_cleanup_job``, the
retention clean-up ``export_cleanup_schedule`` runs, and ``dagster_history_cleanup_job``, the pruning of
Dagster's own run history ``dagster_history_cleanup_schedule`` runs daily.

The in-process executor keeps a one-step run to a single process
(about half the start-up time and memory of the multiprocess executor).
"""

from datetime import UTC, datetime

from dagster import (
    AssetSelection,
    Config,
    Failure,
    MetadataValue,
    OpExecutionContext,
    TableColumn,
    TableRecord,
    TableSchema,
    define_asset_job,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from eclipse_exports.config import Settings
from eclipse_exports.models import ResourceType
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource
from eclipse_exports.resources.run_history import InstanceRunHistory
from eclipse_exports.retention.cleanup import run_cleanup
from eclipse_exports.retention.history import HistorySummary, prune_run_history
from eclipse_exports.retention.summary import CleanupSummary

EXPORT_RESOURCES = tuple(ResourceType)
MAX_TABLE_ROWS = 500
# Dagster's run-retry strategy tag (dagster._core.storage.tags.RETRY_STRATEGY_TAG). An export run is one step;
# the default FROM_FAILURE finds nothing to re-run when a worker died after its step succeeded (file stored,
# job completed, run not yet marked a success), gives up, and leaves the job without a successful run.
# ALL_STEPS re-runs the export, which replaces the job's file under the same key.
RETRY_ALL_STEPS = {"dagster/retry_strategy": "ALL_STEPS"}


def export_job_name(resource: ResourceType) -> str:
    """``alerts_export_job`` and so on."""
    return f"{ResourceType(resource).value}_export_job"


EXPORT_JOBS = {
    resource: define_asset_job(
        name=export_job_name(resource),
        selection=AssetSelection.assets(f"{resource.value}_export"),
        executor_def=in_process_executor,
        tags=RETRY_ALL_STEPS,
        description=f"Materializes one workspace partition of {resource.value}_export for one export request.",
    )
    for resource in EXPORT_RESOURCES
}

export_audit_archive_job = define_asset_job(
    name="export_audit_archive_job",
    selection=AssetSelection.assets("export_audit_archive"),
    executor_def=in_process_executor,
    description="Archives one workspace's export audit trail of one day (export_audit_archive).",
)

executive_report_job = define_asset_job(
    name="executive_report_job",
    selection=AssetSelection.assets("executive_report"),
    executor_def=in_process_executor,
    description="Renders, stores and mails the weekly executive reports of a range of workspace × week partitions.",
)

class CleanupConfig(Config):
    """Run config of ``export_cleanup_job``."""

    as_of: str | None = Field(None, description="judge ages as of this ISO-8601 moment (default: now)")
    dry_run: bool = Field(False, description="list and count only; delete nothing")


def cleanup_metadata(summary: CleanupSummary) -> dict:
    """The pass's summary as Dagster metadata: a per-workspace table, totals, failures, unparseable keys."""
    columns = [TableColumn("workspace", "string"), TableColumn("files", "int"), TableColumn("reports", "int"),
               TableColumn("bytes_removed", "int"), TableColumn("uploads_aborted", "int"),
               TableColumn("errors", "int")]
    rows = summary.table()
    metadata: dict = {
        "summary": MetadataValue.table([TableRecord(r) for r in rows[:MAX_TABLE_ROWS]], TableSchema(columns)),
        "as_of": summary.as_of.isoformat(),
        "dry_run": summary.dry_run,
        "files_removed": MetadataValue.int(summary.files_removed),
        "bytes_removed": MetadataValue.int(summary.bytes_removed),
        "uploads_aborted": MetadataValue.int(summary.uploads_aborted),
        "jobs_expired": MetadataValue.int(summary.jobs_expired),
        "objects_listed": MetadataValue.int(summary.objects_listed),
        "failed_keys": MetadataValue.int(summary.failed_keys),
        "stream_entries_trimmed": MetadataValue.int(summary.stream_entries_trimmed),
        "dead_letters_trimmed": MetadataValue.int(summary.dead_letters_trimmed),
        "seconds": MetadataValue.float(round(summary.seconds, 2)),
    }
    if len(rows) > MAX_TABLE_ROWS:
        metadata["workspaces_not_shown"] = MetadataValue.int(len(rows) - MAX_TABLE_ROWS)
    if summary.failures or summary.errors:
        metadata["failures"] = MetadataValue.md("\n".join(
            [f"- {len(f.keys):,} keys ({', '.join(f.keys[:5])}{' …' if len(f.keys) > 5 else ''}): {f.cause}"
             for f in summary.failures] + [f"- {e}" for e in summary.errors]))
    if summary.unparseable_count:
        metadata["unparseable_keys"] = MetadataValue.json({"count": summary.unparseable_count,
                                                           "first": summary.unparseable})
    return metadata


@op(name="export_cleanup", description="Deletes expired export files and reports, aborts stale uploads, "
                                       "expires their jobs, reconciles usage and trims the streams.")
def export_cleanup(context: OpExecutionContext, config: CleanupConfig, redis: RedisResource,
                   storage: ExportStorageResource, limits: ExportLimitsResource) -> None:
    as_of = datetime.fromisoformat(config.as_of).astimezone(UTC) if config.as_of else None
    summary = run_cleanup(storage.get_storage(), redis.get_client(), limits.get_retention_policy(), as_of,
                          config.dry_run)
    context.log.info(summary.render())
    metadata = cleanup_metadata(summary)
    if not summary.ok:
        raise Failure(description=f"{summary.failed_keys:,} keys not deleted, {len(summary.errors)} errors; "
                                  "the next run retries them", metadata=metadata, allow_retries=False)
    context.add_output_metadata(metadata)


@job(name="export_cleanup_job", executor_def=in_process_executor,
     description="The retention clean-up (see eclipse_exports/retention/cleanup.py), run by export_cleanup_schedule.")
def export_cleanup_job() -> None:
    export_cleanup()


class HistoryCleanupConfig(Config):
    """Run config of ``dagster_history_cleanup_job``."""

    as_of: str | None = Field(None, description="judge ages as of this ISO-8601 moment (default: now)")
    days: int | None = Field(None, gt=0, description="keep this many days (default: ECLIPSE_RUN_HISTORY_DAYS)")
    dry_run: bool = Field(False, description="count only; delete nothing")


def history_metadata(summary: HistorySummary) -> dict:
    """The history pass's summary as Dagster metadata."""
    metadata: dict = {
        "as_of": summary.as_of.isoformat(),
        "cutoff": summary.cutoff.isoformat(),
        "dry_run": summary.dry_run,
        "runs_examined": MetadataValue.int(summary.runs_examined),
        "runs_deleted": MetadataValue.int(summary.runs_deleted),
        "runs_protected": MetadataValue.int(summary.runs_protected),
        "log_objects_deleted": MetadataValue.int(summary.log_objects_deleted),
        "staging_dirs_removed": MetadataValue.int(summary.staging_dirs_removed),
        "seconds": MetadataValue.float(round(summary.seconds, 2)),
    }
    if summary.errors:
        metadata["errors"] = MetadataValue.md("\n".join(f"- {e}" for e in summary.errors))
    return metadata


@op(name="dagster_history_cleanup", description="Deletes finished runs older than ECLIPSE_RUN_HISTORY_DAYS with "
                                                "their event logs and compute logs (never this run's own).")
def dagster_history_cleanup(context: OpExecutionContext, config: HistoryCleanupConfig) -> None:
    as_of = datetime.fromisoformat(config.as_of).astimezone(UTC) if config.as_of else datetime.now(UTC)
    days = config.days or Settings.from_env().run_history_days
    summary = prune_run_history(InstanceRunHistory(context.instance), as_of, days, dry_run=config.dry_run)
    context.log.info(summary.render())
    metadata = history_metadata(summary)
    if not summary.ok:
        raise Failure(description=f"{summary.error_count} deletions failed; the next run retries them",
                      metadata=metadata, allow_retries=False)
    context.add_output_metadata(metadata)


@job(name="dagster_history_cleanup_job", executor_def=in_process_executor,
     description="Prunes Dagster's own history (eclipse_exports/retention/history.py), run by "
                 "dagster_history_cleanup_schedule.")
def dagster_history_cleanup_job() -> None:
    dagster_history_cleanup()
