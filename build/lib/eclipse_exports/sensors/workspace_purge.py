"""``workspace_purge_sensor``: a workspace ``deleted`` in the source database loses every file and its partition.

Each tick reads the deleted workspaces and, for each not purged yet, deletes
every object and incomplete upload under its prefix and marks the jobs of
those files ``expired`` (:func:`eclipse_exports.retention.purge.purge_workspace`),
then removes it from the ``workspaces`` dynamic partitions. A purge that does
not finish within the tick (or fails) is taken up again at the next one.
``archived`` workspaces are not purged: their files live out their retention.
Nothing re-adds a deleted workspace: ``workspace_partitions_sensor`` adds only
active ones, and requests for it are refused before a run is launched.

A partition an unfinished backfill targets stays until that backfill ends:
Dagster fails a backfill whose target partitions disappear (its other
workspaces' partitions with it), while the deleted workspace's own runs just
fail (an operator's run still needs an active workspace). Its files are
purged at once all the same.
"""

import os
import time

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

# Dagster exports no public way to list backfills by status; these are what DagsterInstance.get_backfills takes.
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

from eclipse_exports.partitions import workspace_partitions
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource, SourceDatabaseResource
from eclipse_exports.retention.purge import purge_workspace, purged_workspaces
from eclipse_exports.source.access import deleted_workspace_ids

TICK_TIME_BUDGET_SECONDS = 40.0


UNFINISHED_BACKFILLS = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]


def workspaces_in_unfinished_backfills(instance: DagsterInstance) -> dict[str, str]:
    """Workspace ids that unfinished backfills target, each with one such backfill's id.

    Covers asset backfills (the workspace partitions, or the workspace
    dimension of a multi-partition key such as ``ws_acme|2026-11-23``) and job backfills.
    """
    targeted: dict[str, str] = {}
    for backfill in instance.get_backfills(filters=BulkActionsFilter(statuses=UNFINISHED_BACKFILLS)):
        data = backfill.asset_backfill_data
        names = [str(p.partition_key) for p in data.target_subset.iterate_asset_partitions() if p.partition_key] \
            if data is not None else list(backfill.partition_names or [])
        for name in names:
            for key in name.split("|"):
                targeted.setdefault(key, backfill.backfill_id)
    return targeted


def purge_interval_seconds() -> int:
    """Seconds between purge ticks: ``ECLIPSE_PURGE_INTERVAL_SECONDS``, default 60."""
    return max(1, int(os.environ.get("ECLIPSE_PURGE_INTERVAL_SECONDS") or 60))


@sensor(
    name="workspace_purge_sensor",
    minimum_interval_seconds=purge_interval_seconds(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Deletes every file of a deleted workspace, expires its jobs and removes its partition.",
)
def workspace_purge_sensor(context: SensorEvaluationContext, source_db: SourceDatabaseResource,
                           redis: RedisResource, storage: ExportStorageResource,
                           limits: ExportLimitsResource) -> SensorResult | SkipReason:
    with source_db.get_engine().connect() as conn:
        deleted = deleted_workspace_ids(conn)
    client = redis.get_client()
    partitions = set(context.instance.get_dynamic_partitions(workspace_partitions.name))
    purged = purged_workspaces(client)
    todo = [w for w in deleted if w not in purged or w in partitions]
    if not todo:
        return SkipReason("no deleted workspace left to purge")
    deadline = time.monotonic() + TICK_TIME_BUDGET_SECONDS
    retention_hours = limits.get_limits().retention_hours
    done = []
    for workspace_id in todo:
        if time.monotonic() >= deadline:
            break
        if workspace_id in purged:
            done.append(workspace_id)
            continue
        try:
            outcome = purge_workspace(storage.get_storage(), client, workspace_id, retention_hours, deadline)
        except ValueError as exc:
            context.log.warning(f"workspace {workspace_id!r} cannot be purged: {exc}")
            continue
        if outcome.complete:
            context.log.info(f"purged {workspace_id}: {outcome.summary.render()}")
            done.append(workspace_id)
        else:
            context.log.warning(f"purge of {workspace_id} incomplete, taken up again next tick: "
                                f"{outcome.summary.render()}")
    waiting = workspaces_in_unfinished_backfills(context.instance) if done else {}
    for workspace_id in sorted(w for w in done if w in partitions and w in waiting):
        context.log.info(f"partition {workspace_id} stays until backfill {waiting[workspace_id]} ends")
    removed = [w for w in done if w in partitions and w not in waiting]
    if not removed:
        return SkipReason(f"purged {', '.join(done) or 'nothing yet'}; no partition to remove now")
    return SensorResult(dynamic_partitions_requests=[workspace_partitions.build_delete_request(removed)])
