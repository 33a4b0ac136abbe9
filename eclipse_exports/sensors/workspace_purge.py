"""``workspace_purge_sensor``: a workspace ``deleted`` in the source database loses every file and its partition.

Each tick reads the deleted workspaces and, for each not purged yet, deletes
every object and incomplete upload under its prefix and marks the jobs of
those files ``expired`` (:func:`eclipse_exports.retention.purge_workspace`),
then removes it from the ``workspaces`` dynamic partitions. A purge that does
not finish within the tick (or fails) is taken up again at the next one.
``archived`` workspaces are not purged: their files live out their retention.
Nothing re-adds a deleted workspace: ``workspace_partitions_sensor`` adds only
active ones, and requests for it are refused before a run is launched.
"""

import os
import time

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from eclipse_exports.partitions import workspace_partitions
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource, SourceDatabaseResource
from eclipse_exports.retention import purge_workspace, purged_workspaces
from eclipse_exports.source.access import deleted_workspace_ids

TICK_TIME_BUDGET_SECONDS = 40.0


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
    removed = [w for w in done if w in partitions]
    if not removed:
        return SkipReason(f"purged {', '.join(done) or 'nothing yet'}; no partition to remove")
    return SensorResult(dynamic_partitions_requests=[workspace_partitions.build_delete_request(removed)])
