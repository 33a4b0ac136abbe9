"""``export_audit_archive``: one day's archive of one workspace's export audit trail (workspace × day).

Materializing a partition runs :meth:`eclipse_exports.audit.archive.AuditArchiver.archive`: the day is written
to ``workspaces/{ws}/audit/{YYYY-MM-DD}.jsonl.gz`` hash-chained and signed (with any earlier day not archived
yet, in order), partial when the day is today, and never again once complete. ``export_audit_archive_schedule``
materializes yesterday for every workspace; the UI and ``eclipse-exports audit archive`` materialize any day,
and a backfill over a range of days archives them in order.
"""

from datetime import date

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from eclipse_exports.partitions import export_audit_archive_partitions
from eclipse_exports.resources import AuditSigningResource, ExportStorageResource, RedisResource


@asset(
    name="export_audit_archive",
    partitions_def=export_audit_archive_partitions,
    group_name="audit",
    description="One workspace's export audit trail of one day (UTC) in S3, hash-chained to the day before and "
                "signed (Ed25519); today's archive is partial until the day is over.",
    tags={"eclipse/kind": "audit"},
)
def export_audit_archive(context: AssetExecutionContext, storage: ExportStorageResource, redis: RedisResource,
                         audit_signing: AuditSigningResource) -> MaterializeResult:
    from eclipse_exports.audit.archive import ArchiveRefused, AuditArchiver  # cryptography: only archive runs
    from eclipse_exports.audit.trail import AuditTrail

    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    workspace_id, day = keys["workspace"], date.fromisoformat(keys["day"])
    bucket = storage.get_storage()
    archiver = AuditArchiver(bucket, AuditTrail(redis.get_client()), audit_signing.get_key(),
                             audit_signing.get_retention_days())
    try:
        outcome = archiver.archive(workspace_id, day)
    except ArchiveRefused as exc:
        raise Failure(str(exc), allow_retries=False) from None
    if outcome.unchanged:
        context.log.info(f"{day} of {workspace_id} was archived complete already; it never changes")
    for written, state in outcome.written.items():
        context.log.info(f"archived {written} of {workspace_id} ({state})")
    return MaterializeResult(metadata={
        "s3_key": outcome.key,
        "s3_uri": MetadataValue.url(f"s3://{bucket.bucket}/{outcome.key}"),
        "entries": MetadataValue.int(outcome.entries),
        "sha256": outcome.sha256,
        "partial": outcome.partial,
        "unchanged": outcome.unchanged,
        "days_written": ", ".join(f"{d} ({s})" for d, s in outcome.written.items()) or "none",
        "stream_entries_trimmed": MetadataValue.int(outcome.trimmed),
        "archives_expired": ", ".join(map(str, outcome.expired)) or "none",
        "encryption": bucket.sse.describe(),
    })
