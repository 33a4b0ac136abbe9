"""``workspace_partitions_sensor``: keeps the ``workspaces`` partitions in step with the source database.

Every active workspace becomes a partition, so operators can backfill any
workspace from the UI before it ever sent a request. Partitions are only
added, never deleted (their materialization history stays visible).
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor
from sqlalchemy.exc import OperationalError

from eclipse_exports.partitions import workspace_partitions
from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.source.access import active_workspace_ids


@sensor(
    name="workspace_partitions_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds every active workspace of the source database to the 'workspaces' partitions.",
)
def workspace_partitions_sensor(
    context: SensorEvaluationContext, source_db: SourceDatabaseResource
) -> SensorResult | SkipReason:
    try:
        with source_db.get_engine().connect() as conn:
            active = active_workspace_ids(conn)
    except OperationalError as exc:
        # The database is busy or away for a moment (a demo-data reload locks the SQLite file for a minute):
        # the next tick tries again; nothing is lost by waiting.
        return SkipReason(f"source database not readable now, tried again next tick: {str(exc.orig).strip()}")
    known = set(context.instance.get_dynamic_partitions(workspace_partitions.name))
    new = [w for w in active if w not in known]
    if not new:
        return SkipReason("every active workspace is already a partition")
    return SensorResult(dynamic_partitions_requests=[workspace_partitions.build_add_request(new)])
