"""The export assets ``alerts_export``, ``infringements_export``, ``actions_export`` and ``report_export``.

Each is partitioned by workspace. A materialization launched by
``export_request_sensor`` carries its request as run config; one launched
from the Dagster UI or a backfill carries none and exports the whole
partition as CSV (a report: the last 7 days as HTML) under a generated job id. The work itself is
:func:`eclipse_exports.exports.run.run_export`; this layer turns config into a
request, reports progress (run log, and the ``eclipse/progress`` run tag the
Runs list shows) and shapes the outcome for the UI:

- a **full** export (the whole partition, whatever the format) is a
  materialization of the partition, with the stored-file checks
  (``checks/file_checks.py``) and readable metadata;
- a **filtered** export is an observation of the partition, with the same
  metadata and its verification outcome, so the partition's latest
  materialization always means "the whole workspace";
- a failure tags the run ``eclipse/error_code`` (``too_large``,
  ``forbidden``… for the user's errors, ``export_failed`` for the rest).

Run alone (the checks' "Execute" in the UI), the op re-verifies the
partition's latest materialization.
"""

# No `from __future__ import annotations` here: Dagster resolves the Config
# parameter's annotation at definition time.
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSpec,
    Backoff,
    Config,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    multi_asset,
)
from dagster._core.errors import DagsterExecutionInterruptedError
from pydantic import Field

from eclipse_exports.checks import expected_file_from_metadata, file_check_results, file_check_specs, file_metadata
from eclipse_exports.config import known_secrets, redact
from eclipse_exports.exports import summary as export_summary
from eclipse_exports.exports.run import ExportFailed, ExportResult, FileVerificationFailed, run_export
from eclipse_exports.exports.verification import verify_export_file
from eclipse_exports.models import ErrorCode, ExportRequest, InvalidRequest, ResourceType, iso_utc, utc_now
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
PROGRESS_TAG_SECONDS = 3.0
WILL_RETRY = " (will retry): "
SCOPE_TAG, PROGRESS_TAG, ERROR_CODE_TAG = f"{RUN_TAG_PREFIX}scope", f"{RUN_TAG_PREFIX}progress", \
    f"{RUN_TAG_PREFIX}error_code"


class ExportFiltersConfig(Config):
    """Row filters (the interface's ``filters``); dates are ISO-8601 with an offset."""

    severity: list[str] | None = None
    status: list[str] | None = None
    brand: list[str] | None = None
    date_from: str | None = Field(None, description="inclusive lower bound, e.g. 2026-11-01T00:00:00Z")
    date_to: str | None = Field(None, description="exclusive upper bound")
    action: list[str] | None = Field(None, description="audit_logs: dotted verbs or prefix.* forms")
    actor: list[str] | None = Field(None, description="audit_logs: user ids of the actors")


# Config field → the interface's filter name, where they differ (every other field has the interface's name).
_FILTER_NAMES = {"date_from": "from", "date_to": "to"}


class ExportOptionsConfig(Config):
    """File options (the interface's ``options``)."""

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
            # Every filter the request model has, by its field name (a filter left out here is silently dropped).
            filters=ExportFiltersConfig(**f.model_dump(mode="json", exclude_none=True)),
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
        """Validate this config as a the interface's request. Raises :class:`InvalidRequest`."""
        filters = {_FILTER_NAMES.get(k, k): v for k, v in self.filters.model_dump().items() if v is not None}
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
    """The run tags of a request's run: the interface's ones and ``eclipse/scope`` (``full`` or ``filtered``)."""
    return {
        f"{RUN_TAG_PREFIX}job_id": request.id,
        f"{RUN_TAG_PREFIX}workspace_id": request.workspace_id,
        f"{RUN_TAG_PREFIX}user_id": request.user_id,
        f"{RUN_TAG_PREFIX}resource_type": request.resource_type.value,
        f"{RUN_TAG_PREFIX}format": request.format.value,
        SCOPE_TAG: export_summary.scope(request),
    }


def _tag_run(context: AssetExecutionContext, tags: dict[str, str]) -> None:
    context.instance.add_run_tags(context.run.run_id, tags)


class _ProgressReport:
    """Progress of one run, with its ETA: a run-log line every 2 s and the ``eclipse/progress`` run tag every 3 s."""

    def __init__(self, context: AssetExecutionContext, job_id: str) -> None:
        self.context, self.job_id = context, job_id
        self.logged = self.tagged = 0.0

    def __call__(self, rows: int, total: int, eta_seconds: float | None = None) -> None:
        now, done = time.monotonic(), rows >= total
        text = export_summary.progress_text(rows, total, None if done else eta_seconds)
        if now - self.logged >= PROGRESS_LOG_SECONDS or done:
            self.logged = now
            self.context.log.info(f"{self.job_id}: {text}")
        if now - self.tagged >= PROGRESS_TAG_SECONDS or done:
            self.tagged = now
            _tag_run(self.context, {PROGRESS_TAG: text})


def _preview(result: ExportResult) -> str:
    if result.file.report:
        figures = result.file.report
        return export_summary.markdown_preview([figures], list(figures))
    return export_summary.markdown_preview(result.file.preview, list(result.verification.expected.columns))


def export_metadata(result: ExportResult, region: str | None, on_aws: bool) -> dict[str, Any]:
    """What the UI shows about one export, in reading order (see ``export_summary.py``)."""
    request, file = result.request, result.file
    where: dict[str, Any] = {"s3_uri": result.s3_uri}
    if on_aws:
        bucket = result.s3_uri.removeprefix("s3://").split("/", 1)[0]
        where["aws_console"] = MetadataValue.url(export_summary.aws_console_url(bucket, file.key, region or
                                                                                "us-east-1"))
    recorded = file_metadata(result.verification.expected)
    return {
        "job_id": request.id,
        "requested_by": request.user_id,
        "scope": export_summary.describe_scope(request),
        "filters": MetadataValue.json(export_summary.filters(request)),
        "options": MetadataValue.json(export_summary.options(request)),
        "format": request.format.value,
        "dagster/row_count": recorded["dagster/row_count"],
        "size": export_summary.human_size(file.byte_size),
        "byte_size": recorded["byte_size"],
        "duration": export_summary.human_duration(result.duration_seconds),
        "rows_per_second": MetadataValue.float(round(result.rows_per_second, 1)),
        "sha256": recorded["sha256"],
        "s3_key": recorded["s3_key"],
        **where,
        "download": f"eclipse-exports url {request.id}" if result.download_url else "none: verification failed",
        **({"expires_at": MetadataValue.timestamp(result.expires_at)} if result.expires_at else {}),
        "verification": result.verification.summary(),
        "preview": MetadataValue.md(_preview(result)),
        **recorded,
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
    """Build the workspace-partitioned export asset ``{resource}_export`` with its stored-file checks."""
    resource = ResourceType(resource)
    key = AssetKey(f"{resource.value}_export")

    @multi_asset(
        name=key.path[-1],
        specs=[AssetSpec(
            key,
            partitions_def=workspace_partitions,
            group_name="exports",
            kinds={"s3", "redis"},
            # A filtered export records an observation instead of materializing the partition.
            skippable=True,
            description=(f"A workspace's {resource.value}, exported to S3 as requested. Whole-workspace exports "
                         "materialize the partition (CSV when materialized from the UI or a backfill); filtered "
                         "ones are recorded as observations."
                         if resource is not ResourceType.REPORT else
                         "A workspace's on-demand executive report (HTML). The default period (the last 7 days, "
                         "also when materialized from the UI or a backfill) materializes the partition; a report "
                         "for a chosen period is recorded as an observation."),
        )],
        check_specs=file_check_specs(key, workspace_partitions),
        can_subset=True,
        retry_policy=RETRY_POLICY,
    )
    def _export(
        context: AssetExecutionContext,
        config: ExportConfig,
        source_db: SourceDatabaseResource,
        redis: RedisResource,
        storage: ExportStorageResource,
        limits: ExportLimitsResource,
    ) -> Iterator[Any]:
        if key not in context.selected_asset_keys:
            yield from _reverify(context, key, resource, storage)
            return
        status = redis.get_status_store()
        try:
            request = config.to_request(resource, context.partition_key, context.run.run_id)
        except InvalidRequest as exc:
            raise Failure(f"invalid export request in run config: {exc}", allow_retries=False) from None
        if not config.job_id:
            _tag_run(context, run_tags(request))
        try:
            result = run_export(
                request,
                engine=source_db.get_engine(),
                storage=storage.get_storage(),
                status=status,
                limits=limits.get_limits(),
                run_id=context.run.run_id,
                check_user_access=bool(config.user_id),
                on_progress=_ProgressReport(context, request.id),
                key_time=config.key_time(context.instance, context.run.run_id),
            )
        except ExportFailed as exc:
            status.failed(request.id, exc.code, str(exc), utc_now(), context.run.run_id)
            _tag_run(context, {ERROR_CODE_TAG: exc.code.value})
            if isinstance(exc, FileVerificationFailed):
                yield from _record(context, key, exc.result, storage)
            raise Failure(f"{exc.code.value}: {exc}", allow_retries=False,
                          metadata={"job_id": request.id, "error_code": exc.code.value}) from None
        except (KeyboardInterrupt, DagsterExecutionInterruptedError, Exception) as exc:
            if _interrupted(exc):
                # An operator's terminate (a library may wrap the interrupt in an error of its own). Dagster would
                # retry an interrupted step under its RetryPolicy; a step failure without retries instead ends the
                # CANCELING run CANCELED, and sensors/run_cancellations.py fails the job.
                raise Failure(f"{request.id}: stopped by an operator", allow_retries=False) from None
            message = redact(f"{type(exc).__name__}: {exc}", known_secrets())
            for note in getattr(exc, "__notes__", ()):  # clean-up errors after the first cause
                context.log.warning(f"{request.id}: {redact(note, known_secrets())}")
            if context.retry_number >= RETRY_POLICY.max_retries:
                message = first_cause(earlier_attempt_causes(context), message)
                status.failed(request.id, ErrorCode.EXPORT_FAILED, message, utc_now(), context.run.run_id)
                _tag_run(context, {ERROR_CODE_TAG: ErrorCode.EXPORT_FAILED.value})
                raise Failure(f"export_failed: {message}", allow_retries=False) from None
            context.log.warning(f"{request.id}: attempt {context.retry_number + 1} failed, retrying: {message}")
            raise Failure(f"export_failed{WILL_RETRY}{message}") from None
        yield from _record(context, key, result, storage)

    return _export


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` was caused (anywhere in its chain) by an interrupt: Dagster's terminate of the run."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (KeyboardInterrupt, DagsterExecutionInterruptedError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def earlier_attempt_causes(context: AssetExecutionContext) -> list[str]:
    """The causes of this run's earlier attempts of the step, oldest first (from its ``STEP_UP_FOR_RETRY``
    events: the ``Failure`` raised for a retry says ``export_failed (will retry): {cause}``)."""
    records = context.instance.get_records_for_run(context.run.run_id,
                                                   of_type=DagsterEventType.STEP_UP_FOR_RETRY).records
    causes = []
    for record in records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None and WILL_RETRY in error.message:
            causes.append(error.message.split(WILL_RETRY, 1)[1].strip())
    return causes


def first_cause(earlier: list[str], last: str) -> str:
    """What a job that failed on every attempt says: the first attempt's cause (a killed connection's later
    attempts can fail otherwise, or in their clean-up), and the last one's when it differs."""
    if not earlier or earlier[0] == last:
        return last
    return f"{earlier[0]} (the first of {len(earlier) + 1} attempts; the last failed with: {last})"


def _record(context: AssetExecutionContext, key: AssetKey, result: ExportResult,
            storage: ExportStorageResource) -> Iterator[MaterializeResult]:
    """Materialize a full export with its check results; observe a filtered one (see the module docstring)."""
    client = storage.get_storage().client
    metadata = export_metadata(result, client.meta.region_name,
                               on_aws=(client.meta.endpoint_url or "").endswith(".amazonaws.com"))
    if export_summary.scope(result.request) == export_summary.FULL:
        # Metadata goes on the materialization only: returned with the result, Dagster repeats it on STEP_OUTPUT.
        context.add_asset_metadata(metadata, asset_key=key)
        yield MaterializeResult(asset_key=key, check_results=file_check_results(
            key, result.verification, context.selected_asset_check_keys))
        return
    context.log.info(f"{result.job_id}: filtered export, recorded as an observation of partition "
                     f"'{context.partition_key}' (its file was verified: {result.verification.summary()})")
    # Under keys of their own: the UI shows a partition's later observations beside (and over, for equal
    # keys) its latest materialization's metadata, which must keep describing the whole-workspace export.
    summary = {name: value.value if isinstance(value, MetadataValue) else value
               for name, value in metadata.items() if name not in ("preview", "columns", "content_type")}
    if result.expires_at:
        summary["expires_at"] = iso_utc(result.expires_at)
    context.log_event(AssetObservation(
        asset_key=key, partition=context.partition_key,
        metadata={"filtered_export": MetadataValue.json(summary), "filtered_export_preview": metadata["preview"]},
        description=f"Filtered export {result.job_id} ({export_summary.describe_scope(result.request)}); "
                    "not a whole-workspace export, so not a materialization."))


def _reverify(context: AssetExecutionContext, key: AssetKey, resource: ResourceType,
              storage: ExportStorageResource) -> Iterator[Any]:
    """Verify the partition's latest materialized file again (the checks run without the asset)."""
    if not context.has_partition_key:
        raise Failure("these checks verify one workspace's file, but this run has no partition (Dagster 1.13's "
                      "'Execute all' launches partitioned checks without one); they run with every export, and "
                      "a run of the checks alone needs the tag dagster/partition=<workspace>", allow_retries=False)
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[context.partition_key]), limit=1).records
    if not records or records[0].asset_materialization is None:
        raise Failure(f"partition '{context.partition_key}' has no materialization to verify", allow_retries=False)
    metadata = records[0].asset_materialization.metadata
    try:
        expected = expected_file_from_metadata(metadata, metadata["format"].value)
    except KeyError:
        raise Failure("the latest materialization predates file verification; materialize the partition again",
                      allow_retries=False) from None
    verification = verify_export_file(storage.get_storage(), expected)
    context.log.info(f"{resource.value} file {expected.key}: {verification.summary()}")
    yield from file_check_results(key, verification, context.selected_asset_check_keys)


EXPORT_ASSETS = [export_asset_for(r) for r in ResourceType]
