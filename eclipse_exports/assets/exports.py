"""The export assets ``alerts_export``, ``infringements_export``, ``actions_export`` and ``report_export``.

Each is partitioned by workspace. A materialization launched by
``export_request_sensor`` carries its request as run config; one launched
from the Dagster UI or a backfill carries none and exports the whole
partition as CSV (a report: the last 7 days as HTML) under a generated job id. The work itself is
:func:`eclipse_exports.exporter.run_export`; this layer turns config into a
request, reports progress to the run log and shapes the outcome as
materialization metadata or a failure.
"""

# No `from __future__ import annotations` here: Dagster resolves the Config
# parameter's annotation at definition time.
import json
import time
from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    Config,
    DagsterInstance,
    DagsterRun,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)
from pydantic import Field

from eclipse_exports.config import known_secrets, redact
from eclipse_exports.exporter import ExportFailed, run_export
from eclipse_exports.models import ErrorCode, ExportRequest, InvalidRequest, ResourceType, utc_now
from eclipse_exports.partitions import workspace_partitions
from eclipse_exports.resources import (
    ExportLimitsResource,
    ExportStorageResource,
    RedisResource,
    SourceDatabaseResource,
)

RETRY_POLICY = RetryPolicy(max_retries=2, delay=1, backoff=Backoff.EXPONENTIAL)
RUN_TAG_PREFIX = "eclipse/"
PROGRESS_LOG_SECONDS = 2.0


class ExportFiltersConfig(Config):
    """Row filters (CONTRACT ``filters``); dates are ISO-8601 with an offset."""

    severity: list[str] | None = None
    status: list[str] | None = None
    brand: list[str] | None = None
    date_from: str | None = Field(None, description="inclusive lower bound, e.g. 2026-11-01T00:00:00Z")
    date_to: str | None = Field(None, description="exclusive upper bound")


class ExportOptionsConfig(Config):
    """File options (CONTRACT ``options``)."""

    compression: str = "none"
    excel_compatible: bool = False


class ExportConfig(Config):
    """The export request of one run; all fields optional for UI and backfill materializations."""

    job_id: str | None = Field(None, description="request id; generated from the run id when empty")
    user_id: str | None = Field(None, description="requesting user; empty for operator materializations")
    format: str | None = Field(None, description="csv, json, jsonl or parquet (default csv); html for reports")
    filters: ExportFiltersConfig = Field(default_factory=ExportFiltersConfig)
    options: ExportOptionsConfig = Field(default_factory=ExportOptionsConfig)
    delivery: str = "download"
    created_at: str | None = None
    picked_up_at: str | None = Field(None, description="when the sensor picked the request up (ISO-8601); "
                                                       "dates the file's key when created_at is empty")

    @classmethod
    def from_request(cls, request: ExportRequest, picked_up_at: datetime | None = None) -> "ExportConfig":
        """Run config for a validated request (the sensor's side), picked up at ``picked_up_at``."""
        f, o = request.filters, request.options
        return cls(
            job_id=request.id,
            user_id=request.user_id,
            format=request.format.value,
            filters=ExportFiltersConfig(
                severity=f.severity, status=f.status, brand=f.brand,
                date_from=f.date_from.isoformat() if f.date_from else None,
                date_to=f.date_to.isoformat() if f.date_to else None,
            ),
            options=ExportOptionsConfig(compression=o.compression, excel_compatible=o.excel_compatible),
            delivery=request.delivery,
            created_at=request.created_at.isoformat() if request.created_at else None,
            picked_up_at=picked_up_at.astimezone(UTC).isoformat() if picked_up_at else None,
        )

    def key_time(self, instance: DagsterInstance, run_id: str) -> datetime | None:
        """The moment that dates the job's file when the request has no ``createdAt``: its pick-up time,
        else (UI and backfill runs) the run's creation. Every run of one config gets the same answer."""
        if self.picked_up_at:
            return datetime.fromisoformat(self.picked_up_at)
        record = instance.get_run_record_by_id(run_id)
        if record is None:
            return None
        created = record.create_timestamp
        return created if created.tzinfo else created.replace(tzinfo=UTC)  # run storage keeps naive UTC

    def to_request(self, resource: ResourceType, workspace_id: str, run_id: str) -> ExportRequest:
        """Validate this config as a CONTRACT request. Raises :class:`InvalidRequest`."""
        filters = {k: v for k, v in {
            "severity": self.filters.severity, "status": self.filters.status, "brand": self.filters.brand,
            "from": self.filters.date_from, "to": self.filters.date_to}.items() if v is not None}
        payload = {
            "id": self.job_id or f"dagster-{run_id}",
            "workspaceId": workspace_id,
            "userId": self.user_id or "operator",
            "resourceType": resource.value,
            "format": self.format or ("html" if resource is ResourceType.REPORT else "csv"),
            "filters": filters,
            "options": {"compression": self.options.compression, "excelCompatible": self.options.excel_compatible},
            "delivery": self.delivery,
        }
        if self.created_at:
            payload["createdAt"] = self.created_at
        return ExportRequest.from_payload(json.dumps(payload))


def run_tags(request: ExportRequest) -> dict[str, str]:
    """The CONTRACT run tags of a request's run."""
    return {
        f"{RUN_TAG_PREFIX}job_id": request.id,
        f"{RUN_TAG_PREFIX}workspace_id": request.workspace_id,
        f"{RUN_TAG_PREFIX}user_id": request.user_id,
        f"{RUN_TAG_PREFIX}resource_type": request.resource_type.value,
        f"{RUN_TAG_PREFIX}format": request.format.value,
    }


def export_request_of_run(run: DagsterRun, instance: DagsterInstance) -> tuple[ExportRequest, datetime | None]:
    """The request an export run carries and its :meth:`ExportConfig.key_time`, from the run's config and tags.

    Raises ``KeyError``/``ValueError`` (``InvalidRequest`` included) for a run that is not an export run.
    """
    resource = ResourceType(run.tags[f"{RUN_TAG_PREFIX}resource_type"])
    ops = (run.run_config or {}).get("ops", {})
    config = ExportConfig.model_validate(ops.get(f"{resource.value}_export", {}).get("config", {}))
    if not config.job_id:
        config = config.model_copy(update={"job_id": run.tags[f"{RUN_TAG_PREFIX}job_id"]})
    request = config.to_request(resource, run.tags["dagster/partition"], run.run_id)
    return request, config.key_time(instance, run.run_id)


def export_asset_for(resource: ResourceType) -> AssetsDefinition:
    """Build the workspace-partitioned export asset ``{resource}_export``."""
    resource = ResourceType(resource)

    @asset(
        name=f"{resource.value}_export",
        partitions_def=workspace_partitions,
        group_name="exports",
        retry_policy=RETRY_POLICY,
        kinds={"s3", "redis"},
        description=(f"A workspace's {resource.value}, exported to S3 as requested "
                     "(CSV of the whole partition when materialized from the UI or a backfill)."
                     if resource is not ResourceType.REPORT else
                     "A workspace's on-demand executive report (HTML) for the requested period "
                     "(the last 7 days when materialized from the UI or a backfill)."),
    )
    def _export(
        context: AssetExecutionContext,
        config: ExportConfig,
        source_db: SourceDatabaseResource,
        redis: RedisResource,
        storage: ExportStorageResource,
        limits: ExportLimitsResource,
    ) -> MaterializeResult:
        status = redis.get_status_store()
        try:
            request = config.to_request(resource, context.partition_key, context.run.run_id)
        except InvalidRequest as exc:
            raise Failure(f"invalid export request in run config: {exc}", allow_retries=False) from None
        if not config.job_id:
            context.instance.add_run_tags(context.run.run_id, run_tags(request))

        last_logged = [0.0]

        def report(rows: int, total: int) -> None:
            # The status hash gets every batch; the run log a line every 2 s and the last one.
            now = time.monotonic()
            if now - last_logged[0] >= PROGRESS_LOG_SECONDS or rows >= total:
                last_logged[0] = now
                context.log.info(f"{request.id}: {rows:,} of {total:,} rows written")

        try:
            result = run_export(
                request,
                engine=source_db.get_engine(),
                storage=storage.get_storage(),
                status=status,
                limits=limits.get_limits(),
                run_id=context.run.run_id,
                check_user_access=bool(config.user_id),
                on_progress=report,
                key_time=config.key_time(context.instance, context.run.run_id),
            )
        except ExportFailed as exc:
            status.failed(request.id, exc.code, str(exc), utc_now(), context.run.run_id)
            raise Failure(f"{exc.code.value}: {exc}", allow_retries=False,
                          metadata={"job_id": request.id, "error_code": exc.code.value}) from None
        except Exception as exc:
            message = redact(f"{type(exc).__name__}: {exc}", known_secrets())
            if context.retry_number >= RETRY_POLICY.max_retries:
                status.failed(request.id, ErrorCode.EXPORT_FAILED, message, utc_now(), context.run.run_id)
                raise Failure(f"export_failed: {message}", allow_retries=False) from None
            context.log.warning(f"{request.id}: attempt {context.retry_number + 1} failed, retrying: {message}")
            raise Failure(f"export_failed (will retry): {message}") from None

        return MaterializeResult(
            metadata={
                "job_id": request.id,
                "format": result.format,
                "row_count": MetadataValue.int(result.row_count),
                "byte_size": MetadataValue.int(result.byte_size),
                "s3_uri": MetadataValue.url(result.s3_uri),
                "duration_seconds": MetadataValue.float(round(result.duration_seconds, 3)),
                "rows_per_second": MetadataValue.float(round(result.rows_per_second, 1)),
                "expires_at": result.expires_at.isoformat(),
            }
        )

    return _export


EXPORT_ASSETS = [export_asset_for(r) for r in ResourceType]
