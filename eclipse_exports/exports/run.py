"""One export job from start to finish, without Dagster: snapshot, size check, stream, upload, status.

:func:`run_export` is what an asset materialization does for a request:

1. status ``running`` (with the Dagster run id);
2. inside one read-only snapshot: re-check access, count the matching rows,
   refuse more than ``max_export_rows`` (``too_large``, before anything is
   written) and a workspace over its quota (``quota_exceeded``; usage is the
   workspace's Redis counter, ``usage.py``, not a listing);
3. stream rows batch by batch through the format writer (and gzip) into an
   S3 multipart upload, reporting progress and an estimate of the time left
   (``observability/eta.py``) after every batch and keeping the
   first rows as a preview — or, for a ``report``, render the workspace's
   executive report (:mod:`eclipse_exports.reports`) for the request's period (default: the
   last 7 days) and upload it;
4. read the stored object back and verify it (``verification.py``: size and
   SHA-256 as uploaded, parses in its format, as many rows as the snapshot
   counted); a file that fails is never handed out;
5. presign a download URL and set status ``completed``; with
   ``delivery: "email"``, mail the link to the requesting user's own address
   from the source database (checked before exporting, sent after).

One job has at most one file: the key's timestamp is the request's
``createdAt``, else its pick-up time (``key_time``), so a re-executed or
retried run writes the same key and replaces the file; a different earlier
file of the job is deleted once the new one is complete. The file carries
the job id, workspace and resource as S3 user metadata. The usage counter
follows every part stored, and forgets replaced and removed files.

Errors the user can act on raise :class:`ExportFailed` with an interface error
code; anything else propagates (the caller marks the job ``failed``). A file
that was written but could not be delivered (email failure) is deleted.
"""

import gzip
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pyarrow as pa
from sqlalchemy import Engine

from eclipse_exports.audit.trail import EMAILED, AuditTrail, system_actor
from eclipse_exports.delivery.email import build_export_email
from eclipse_exports.delivery.recipients import recipient_for
from eclipse_exports.delivery.smtp import DeliveryFailed, parse_smtp_url, send_email
from eclipse_exports.exports.columns import export_schema
from eclipse_exports.exports.job_file import JobFile
from eclipse_exports.exports.row_source import export_rows
from eclipse_exports.exports.verification import ExpectedFile, FileVerification, verify_export_file
from eclipse_exports.exports.writers import content_type, format_timestamps, open_writer
from eclipse_exports.models import ErrorCode, ExportFormat, ExportRequest, ResourceType, iso_utc, utc_now
from eclipse_exports.observability.eta import Estimate, ExportEta, Pace, PaceHistory
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.reports import write_report
from eclipse_exports.retention.usage import QuotaPolicy, WorkspaceUsage
from eclipse_exports.source.access import check_access, check_workspace
from eclipse_exports.source.reader import DEFAULT_BATCH_ROWS
from eclipse_exports.storage.client import ExportStorage

PREVIEW_ROWS = 5

DEFAULT_REPORT_PERIOD = timedelta(days=7)
"""An on-demand report without ``from``/``to`` covers the 7 days up to the request's ``createdAt`` (else its pick-up
time, else the run's start): the moment its key is dated by, so a retry or re-execution renders the same period."""


class ExportFailed(Exception):
    """A job that cannot complete for a reason the user can act on.

    ``code`` is the interface's ``errorCode``; ``str(exc)`` the readable cause.
    Retrying does not help.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FileVerificationFailed(ExportFailed):
    """The stored file is not what was written (``export_failed``); ``result`` describes both.

    The file stays where it is for inspection; no URL or email is given out.
    """

    def __init__(self, result: "ExportResult") -> None:
        super().__init__(ErrorCode.EXPORT_FAILED, f"the stored file failed verification: "
                                                  f"{result.verification.summary()}")
        self.result = result


@dataclass(frozen=True)
class ExportLimits:
    """Deployment limits (docs/interface.md section 5): rows per export, bytes per workspace, file lifetime.

    ``workspace_quota_overrides`` maps workspace ids to their own quota in bytes.
    """

    max_export_rows: int = 10_000_000
    workspace_quota_bytes: int = 5_368_709_120
    retention_hours: int = 72
    download_url_ttl_seconds: int = 3600
    smtp_url: str | None = None
    workspace_quota_overrides: Mapping[str, int] = field(default_factory=dict)

    @property
    def quota(self) -> QuotaPolicy:
        """The workspace quotas."""
        return QuotaPolicy(self.workspace_quota_bytes, self.workspace_quota_overrides)


@dataclass(frozen=True)
class WrittenFile:
    """An uploaded file as the export saw it go out.

    ``row_count`` is rows written; ``snapshot_row_count`` what the snapshot
    counted before streaming (a report: the rows it lists). ``sha256`` is the
    hex digest of the uploaded bytes; ``preview`` the first rows as dicts
    (Arrow's Python values), ``report`` a report's figures (else empty);
    ``stream_seconds`` how long streaming the rows into the upload took.
    """

    key: str
    row_count: int
    snapshot_row_count: int
    byte_size: int
    sha256: str
    content_type: str
    preview: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    stream_seconds: float = 0.0


@dataclass(frozen=True)
class ExportResult:
    """A finished export: the request, where the file is, what it holds, how it verified, how fast it went.

    ``download_url`` is empty and ``expires_at`` ``None`` when verification failed.
    """

    request: ExportRequest
    file: WrittenFile
    s3_uri: str
    verification: FileVerification
    download_url: str
    expires_at: datetime | None
    completed_at: datetime
    duration_seconds: float

    @property
    def job_id(self) -> str:
        return self.request.id

    @property
    def key(self) -> str:
        return self.file.key

    @property
    def format(self) -> str:
        return self.request.format.value

    @property
    def row_count(self) -> int:
        return self.file.row_count

    @property
    def byte_size(self) -> int:
        return self.file.byte_size

    @property
    def rows_per_second(self) -> float:
        """Throughput over the whole job (count, stream and upload)."""
        return self.row_count / self.duration_seconds if self.duration_seconds > 0 else float(self.row_count)


ProgressCallback = Callable[[int, int, float | None], None]
"""``(rows_written, total_rows, eta_seconds or None)``, called after every batch."""


def run_export(
    request: ExportRequest,
    *,
    engine: Engine,
    storage: ExportStorage,
    status: JobStatusStore,
    limits: ExportLimits,
    run_id: str,
    check_user_access: bool = True,
    on_progress: ProgressCallback | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    key_time: datetime | None = None,
) -> ExportResult:
    """Export ``request``'s rows to S3 and record the outcome in its status hash.

    ``key_time`` is the request's pick-up time, used for the object key when
    the request has no ``createdAt`` (the run's start when neither is given).
    ``on_progress(rows_written, total_rows, eta_seconds)`` is called after every batch (``eta_seconds`` is
    ``None`` while there is no estimate).
    ``check_user_access=False`` skips the membership check (operator
    materializations with no requesting user); the workspace must still be
    ``active``, so nothing is exported from an archived or purged workspace.
    Raises :class:`ExportFailed` (access, ``too_large``, ``quota_exceeded``;
    :class:`FileVerificationFailed` when the stored file is not what was
    written) and lets other errors through; a failed upload is aborted so no
    parts remain.
    """
    resource = ResourceType(request.resource_type)
    started_at = utc_now()
    clock = time.monotonic()
    previous_file = status.get(request.id).get("filePath")
    status.running(request, run_id, started_at)
    job_file = JobFile(request, storage, WorkspaceUsage(status.client, storage), key_time or started_at)

    recipient = None
    with engine.connect() as conn:
        denied = check_access(conn, request.workspace_id, request.user_id, resource) if check_user_access \
            else check_workspace(conn, request.workspace_id)
        if denied is not None:
            raise ExportFailed(denied.code, denied.message)
        if request.delivery == "email":
            recipient = recipient_for(conn, request.workspace_id, request.user_id)
    if request.delivery == "email":
        if not limits.smtp_url:
            raise ExportFailed(ErrorCode.EXPORT_FAILED,
                               "email delivery is not configured (ECLIPSE_SMTP_URL is unset); request a download")
        if recipient is None:
            raise ExportFailed(ErrorCode.EXPORT_FAILED,
                               f"user '{request.user_id}' has no email address in workspace '{request.workspace_id}'")

    if resource is ResourceType.REPORT:
        written = _write_report(request, engine, job_file, limits, started_at,
                                request.created_at_utc or key_time or started_at)
    else:
        written = _write_rows(request, engine, job_file, status, limits, on_progress, batch_rows, started_at)
    streamed = time.monotonic()
    job_file.drop_earlier(previous_file)
    key, filename = written.key, written.key.rsplit("/", 1)[-1]
    verification = verify_export_file(storage, ExpectedFile(
        key=key, format=request.format, compressed=request.options.compression == "gzip",
        byte_size=written.byte_size, sha256=written.sha256, row_count=written.snapshot_row_count,
        columns=() if resource is ResourceType.REPORT else tuple(export_schema(resource).names),
        content_type=written.content_type))

    completed_at = utc_now()
    result = ExportResult(request=request, file=written, s3_uri=f"s3://{storage.bucket}/{key}",
                          verification=verification, download_url="", expires_at=None,
                          completed_at=completed_at, duration_seconds=time.monotonic() - clock)
    if not verification.passed:
        raise FileVerificationFailed(result)
    expires_at = completed_at + timedelta(hours=limits.retention_hours)
    ttl = min(limits.download_url_ttl_seconds, int((expires_at - completed_at).total_seconds()))
    url = storage.presign(key, ttl, workspace_id=request.workspace_id)
    if recipient is not None:
        message = build_export_email(recipient, request, download_url=url,
                                     expires_at=completed_at + timedelta(seconds=ttl), row_count=written.row_count,
                                     file_name=filename)
        try:
            send_email(parse_smtp_url(limits.smtp_url or ""), message)
        except DeliveryFailed as exc:
            job_file.remove()
            raise ExportFailed(ErrorCode.EXPORT_FAILED,
                               f"the file was exported but the email failed, so it was removed: {exc}") from None
    status.completed(
        request.id,
        {
            "rowCount": written.row_count,
            "byteSize": written.byte_size,
            "filePath": key,
            "downloadUrl": url,
            "expiresAt": iso_utc(expires_at),
            "completedAt": iso_utc(completed_at),
            "rowsWritten": written.row_count,
        },
        sha256=written.sha256,
    )
    if recipient is not None:  # mailed to the requesting member's own address (a user id, never an address here)
        AuditTrail(status.client).append(request.workspace_id, EMAILED, job_id=request.id,
                                         actor=system_actor("run"), details={"to": request.user_id, "filePath": key})
    if resource is not ResourceType.REPORT:
        PaceHistory(status.client).record(resource.value, request.format.value, Pace(
            written.row_count, written.stream_seconds, time.monotonic() - streamed, written.byte_size))
    return replace(result, download_url=url, expires_at=expires_at, duration_seconds=time.monotonic() - clock)


def _write_rows(request: ExportRequest, engine: Engine, job_file: JobFile, status: JobStatusStore,
                limits: ExportLimits, on_progress: ProgressCallback | None, batch_rows: int,
                started_at: datetime) -> WrittenFile:
    """Stream the request's rows into its file, keeping the first rows as a preview."""
    resource = ResourceType(request.resource_type)
    schema = export_schema(resource)
    with export_rows(request, engine, job_file.storage, status.client, started_at) as rows:
        total = rows.count()
        if total > limits.max_export_rows:
            raise ExportFailed(
                ErrorCode.TOO_LARGE,
                f"{total:,} rows match this export; the limit is {limits.max_export_rows:,}. "
                "Narrow the filters (date range, severity, status or brand) and request it again.",
            )
        _check_quota(request, job_file.usage, limits)
        eta = ExportEta(total, _pace_format(request), PaceHistory(status.client).recent(resource.value,
                                                                                        request.format.value))
        _report_progress(request.id, status, on_progress, 0, total, eta.start())
        written = 0
        preview: list[pa.RecordBatch] = []
        file_type = content_type(request.format, request.options.compression)
        streaming = time.monotonic()
        with job_file.open(file_type) as upload:
            sink = gzip.GzipFile(fileobj=upload, mode="wb", mtime=0, compresslevel=6) \
                if request.options.compression == "gzip" else upload
            writer = open_writer(request.format, sink, schema, request.options.excel_compatible)
            for batch in rows.batches(schema, batch_rows):
                writer.write(batch)
                if written < PREVIEW_ROWS:
                    preview.append(batch.slice(0, PREVIEW_ROWS - written))
                written += batch.num_rows
                _report_progress(request.id, status, on_progress, written, total,
                                 eta.after(written, upload.bytes_written))
            writer.close()
            if sink is not upload:
                sink.close()
    return WrittenFile(job_file.key, written, total, upload.bytes_written, upload.sha256, file_type,
                       _preview_rows(preview), stream_seconds=time.monotonic() - streaming)


def _pace_format(request: ExportRequest) -> str:
    """The format as the read-back speeds name it: gzip CSV reads back faster than plain CSV."""
    gzipped = request.options.compression == "gzip" and request.format is ExportFormat.CSV
    return "csv.gz" if gzipped else request.format.value


def _report_progress(job_id: str, status: JobStatusStore, on_progress: ProgressCallback | None, written: int,
                     total: int, estimate: Estimate | None) -> None:
    """Rows so far and the estimate into the status hash, then to the caller's callback."""
    status.progress(job_id, written, total, estimate.seconds if estimate else None,
                    estimate.completes_at if estimate else None)
    if on_progress is not None:
        on_progress(written, total, estimate.seconds if estimate else None)


def _preview_rows(batches: list[pa.RecordBatch]) -> list[dict]:
    """The preview batches as dicts, timestamps as their CSV/JSON text (``YYYY-MM-DDTHH:MM:SSZ``).

    Arrow turns a timestamp into a Python datetime through pandas, which an export run never imports
    otherwise; rendered as text first, nothing needs it.
    """
    rows: list[dict] = []
    for batch in batches:
        columns = [format_timestamps(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
        rows += pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist()
    return rows


def _write_report(request: ExportRequest, engine: Engine, job_file: JobFile, limits: ExportLimits,
                  started_at: datetime, requested_at: datetime) -> WrittenFile:
    """Render the workspace's executive report for the request's period and upload it (shown inline).

    Without ``to`` the period ends at ``requested_at`` (the request's own moment), never at the run's start.
    """
    _check_quota(request, job_file.usage, limits)
    period_end = request.filters.date_to or requested_at
    period_start = request.filters.date_from or period_end - DEFAULT_REPORT_PERIOD
    key = job_file.key
    report = write_report(engine, job_file.storage, key, request.workspace_id, period_start, period_end, started_at,
                          **job_file.upload_options())
    data = report.data
    figures = {"period_start": iso_utc(period_start), "period_end": iso_utc(period_end),
               "alerts": data.alert_count, "infringements": data.infringement_count, "actions": data.action_count}
    return WrittenFile(key, data.row_count, data.row_count, report.byte_size, report.sha256,
                       content_type(ExportFormat.HTML), report=figures)


def _check_quota(request: ExportRequest, usage: WorkspaceUsage, limits: ExportLimits) -> None:
    used = usage.bytes_used(request.workspace_id)
    quota = limits.quota.quota_for(request.workspace_id)
    if used >= quota:
        raise ExportFailed(
            ErrorCode.QUOTA_EXCEEDED,
            f"workspace '{request.workspace_id}' already holds {used:,} bytes of exports "
            f"(quota {quota:,}); wait for older files to expire.",
        )
