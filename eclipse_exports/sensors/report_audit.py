"""``executive_report_audit_sensor``: writes the weekly reports' audit entries (rendered, delivered or skipped)
into each workspace's export audit trail, from ``executive_report``'s materializations after its cursor."""

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from eclipse_exports.assets.executive_report import ASSET_NAME
from eclipse_exports.audit.reports import report_audit_events
from eclipse_exports.audit.trail import AuditTrail, system_actor
from eclipse_exports.resources import RedisResource

BATCH = 500


@sensor(
    name="executive_report_audit_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Appends each weekly report's rendered and delivered/skipped entries to its workspace's audit "
                "trail (the cursor is the last materialization's event-log id).",
)
def executive_report_audit_sensor(context: SensorEvaluationContext, redis: RedisResource) -> SensorResult | SkipReason:
    records = context.instance.fetch_materializations(AssetKey(ASSET_NAME), limit=BATCH, cursor=context.cursor,
                                                      ascending=True)
    if not records.records:
        return SkipReason("no new weekly report")
    trail, written = AuditTrail(redis.get_client()), 0
    for record in records.records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = {name: value.value for name, value in materialization.metadata.items()}
        for workspace_id, event, details, event_id in report_audit_events(metadata, record.run_id,
                                                                          record.storage_id):
            trail.append(workspace_id, event, actor=system_actor("executive_report"), details=details,
                         event_id=event_id)
            written += 1
    context.log.info(f"{written} audit entries for {len(records.records)} report(s)")
    return SensorResult(cursor=records.cursor)
