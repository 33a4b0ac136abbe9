"""One export job from start to finish, without Dagster: snapshot, size check, stream, upload, status.

:func:`run_export` is what an asset materialization does for a request:

1. status ``running`` (with the Dagster run id);
2. inside one read-only snapshot: re-check access, count the matching rows,
   refuse more than ``max_export_rows`` (``too_large``, before anything is
   written) and a workspace over its quota (``quota_exceeded``; usage is the
   workspace's Redis counter, ``usage.py``, not a listing);
3. stream rows batch by batch through the format writer (and gzip) into an
   S3 multipart upload, reporting progress after every batch — or, for a
   ``report``, render the workspace's executive report (:mod:`eclipse_exports.reports`)
   for the request's period (default: the last 7 days) and upload it;
4. presign a download URL and set status ``completed``; with
   ``delivery: "email"``, mail the link to the requesting user's own address
   from the source database (checked before exporting, sent after).

One job has at most one file: the key's timestamp is the request's
``createdAt``, else its pick-up time (``key_time``), so a re-executed or
retried run writes the same key and replaces the file; a different earlier
file of the job is deleted once the new one is complete. The file carries
the job id, workspace and resource as S3 user metadata. The usage counter
follows every part stored, and forgets replaced and removed files.

Errors the user can act on raise :class:`ExportFailed` with a CONTRACT error
code; anything else propagates (the caller marks the job ``failed``). A file
that was written but could not be delivered (email failure) is deleted.
"""

import gzip
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from eclipse_exports.columns import export_schema
from eclipse_exports.delivery import DeliveryFailed, build_export_email, parse_smtp_url, recipient_for, send_email
from eclipse_exports.models import ErrorCode, ExportRequest, ResourceType, iso_utc, utc_now
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.reports import write_report
from eclipse_exports.source.access import check_access, check_workspace
from eclipse_exports.source.queries import count_query, export_query
from eclipse_exports.source.reader import DEFAULT_BATCH_ROWS, export_snapshot
from eclipse_exports.storage import ExportStorage, MultipartUpload
from eclipse_exports.usage import QuotaPolicy, WorkspaceUsage
from eclipse_exports.writers import CONTENT_TYPES, open_writer

DEFAULT_REPORT_PERIOD = timedelta(days=7)
"""An on-demand report without ``from``/``to`` covers the 7 days up to the job's start."""


class ExportFailed(Exception):
    """A job that cannot complete for a reason the user can act on.

    ``code`` is the CONTRACT ``errorCode``; ``str(exc)`` the readable cause.
    Retrying does not help.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ExportLimits:
    """Deployment limits (CONTRACT section 5): rows per export, bytes per workspace, file lifetime.

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
class ExportResult:
    """A finished export: where the file is, what it holds and how fast it was written."""

    job_id: str
    key: str
    s3_uri: str
    format: str
    row_count: int
    byte_size: int
    download_url: str
    expires_at: datetime
    completed_at: datetime
    duration_seconds: float

    @property
    def rows_per_second(self) -> float:
        """Throughput over the whole job (count, stream and upload)."""
        return self.row_count / self.duration_seconds if self.duration_seconds > 0 else float(self.row_count)


ProgressCallback = Callable[[int, int], None]


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
    ``on_progress(rows_written, total_rows)`` is called after every batch.
    ``check_user_access=False`` skips the membership check (operator
    materializations with no requesting user); the workspace must still be
    ``active``, so nothing is exported from an archived or purged workspace.
    Raises :class:`ExportFailed` (access, ``too_large``, ``quota_exceeded``)
    and lets other errors through; a failed upload is aborted so no parts remain.
    """
    resource = ResourceType(request.resource_type)
    started_at = utc_now()
    clock = time.monotonic()
    previous_file = status.get(request.id).get("filePath")
    status.running(request, run_id, started_at)
    job_file = _JobFile(request, storage, WorkspaceUsage(status.client, storage), key_time or started_at)

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
        key, written, byte_size = _write_report(request, engine, job_file, limits, started_at)
    else:
        key, written, byte_size = _write_rows(request, engine, job_file, status, limits, on_progress, batch_rows)
    job_file.drop_earlier(previous_file)
    filename = key.rsplit("/", 1)[-1]

    completed_at = utc_now()
    expires_at = completed_at + timedelta(hours=limits.retention_hours)
    ttl = min(limits.download_url_ttl_seconds, int((expires_at - completed_at).total_seconds()))
    url = storage.presign(key, ttl)
    if recipient is not None:
        message = build_export_email(recipient, request, download_url=url,
                                     expires_at=completed_at + timedelta(seconds=ttl), row_count=written,
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
            "rowCount": written,
            "byteSize": byte_size,
            "filePath": key,
            "downloadUrl": url,
            "expiresAt": iso_utc(expires_at),
            "completedAt": iso_utc(completed_at),
            "rowsWritten": written,
        },
    )
    return ExportResult(
        job_id=request.id,
        key=key,
        s3_uri=f"s3://{storage.bucket}/{key}",
        format=request.format.value,
        row_count=written,
        byte_size=byte_size,
        download_url=url,
        expires_at=expires_at,
        completed_at=completed_at,
        duration_seconds=time.monotonic() - clock,
    )


def job_file_key(storage: ExportStorage, request: ExportRequest, key_time: datetime) -> str:
    """The object key of the request's one file: dated by its ``createdAt``, else by ``key_time``
    (its pick-up time), so every run of the job writes the same key."""
    return storage.export_key(request.workspace_id, request.resource_type, request.id, request.extension,
                              request.created_at_utc or key_time)


class _JobFile:
    """The one object of a job: its key, its upload (metadata, usage counting) and replacing what was there."""

    def __init__(self, request: ExportRequest, storage: ExportStorage, usage: WorkspaceUsage,
                 key_time: datetime) -> None:
        self.request, self.storage, self.usage = request, storage, usage
        self.workspace_id = request.workspace_id
        self.key = job_file_key(storage, request, key_time)
        self.replaced_bytes = 0

    def upload_options(self) -> dict:
        """``metadata`` and ``on_stored`` for the job's upload; an object already at the key (an earlier
        run of the job) is measured first, as it will be replaced."""
        self.replaced_bytes = self.storage.object_size(self.key) or 0
        return {"metadata": self.storage.export_metadata(self.workspace_id, self.request.resource_type,
                                                         self.request.id),
                "on_stored": self.usage.recorder(self.workspace_id)}

    def open(self, content_type: str) -> MultipartUpload:
        """The upload stream of the job's file (see :meth:`upload_options`)."""
        return self.storage.open_upload(self.key, content_type, self.key.rsplit("/", 1)[-1],
                                        **self.upload_options())

    def drop_earlier(self, previous_key: str | None) -> None:
        """After completion: the replaced object no longer counts, and an earlier file of the job under
        another key (a run before keys came from the request) is deleted."""
        self.usage.add(self.workspace_id, -self.replaced_bytes)
        if not previous_key or previous_key == self.key:
            return
        parsed = self.storage.parse_key(previous_key)
        if parsed is None or parsed.job_id != self.request.id or parsed.workspace_id != self.workspace_id:
            return
        size = self.storage.object_size(previous_key)
        if size is not None:
            self.storage.delete(previous_key)
            self.usage.add(self.workspace_id, -size)

    def remove(self) -> None:
        """Delete the completed file (it could not be delivered)."""
        size = self.storage.object_size(self.key)
        if size is not None:
            self.storage.delete(self.key)
            self.usage.add(self.workspace_id, -size)


def _write_rows(request: ExportRequest, engine: Engine, job_file: _JobFile, status: JobStatusStore,
                limits: ExportLimits, on_progress: ProgressCallback | None, batch_rows: int) -> tuple[str, int, int]:
    """Stream the request's rows into its file; returns (key, rows written, bytes)."""
    resource = ResourceType(request.resource_type)
    schema = export_schema(resource)
    with export_snapshot(engine) as snapshot:
        total = snapshot.count(count_query(resource, request.workspace_id, request.filters))
        if total > limits.max_export_rows:
            raise ExportFailed(
                ErrorCode.TOO_LARGE,
                f"{total:,} rows match this export; the limit is {limits.max_export_rows:,}. "
                "Narrow the filters (date range, severity, status or brand) and request it again.",
            )
        _check_quota(request, job_file.usage, limits)
        status.progress(request.id, 0, total)
        written = 0
        with job_file.open(CONTENT_TYPES[request.format]) as upload:
            sink = gzip.GzipFile(fileobj=upload, mode="wb", mtime=0, compresslevel=6) \
                if request.options.compression == "gzip" else upload
            writer = open_writer(request.format, sink, schema, request.options.excel_compatible)
            query = export_query(resource, request.workspace_id, request.filters)
            for batch in snapshot.record_batches(query, schema, batch_rows):
                writer.write(batch)
                written += batch.num_rows
                status.progress(request.id, written, total)
                if on_progress is not None:
                    on_progress(written, total)
            writer.close()
            if sink is not upload:
                sink.close()
    return job_file.key, written, upload.bytes_written


def _write_report(request: ExportRequest, engine: Engine, job_file: _JobFile, limits: ExportLimits,
                  started_at: datetime) -> tuple[str, int, int]:
    """Render the workspace's executive report for the request's period; returns (key, rows covered, bytes)."""
    _check_quota(request, job_file.usage, limits)
    period_end = request.filters.date_to or started_at
    period_start = request.filters.date_from or period_end - DEFAULT_REPORT_PERIOD
    report = write_report(engine, job_file.storage, job_file.key, request.workspace_id, period_start, period_end,
                          started_at, **job_file.upload_options())
    return job_file.key, report.data.row_count, report.byte_size


def _check_quota(request: ExportRequest, usage: WorkspaceUsage, limits: ExportLimits) -> None:
    used = usage.bytes_used(request.workspace_id)
    quota = limits.quota.quota_for(request.workspace_id)
    if used >= quota:
        raise ExportFailed(
            ErrorCode.QUOTA_EXCEEDED,
            f"workspace '{request.workspace_id}' already holds {used:,} bytes of exports "
            f"(quota {quota:,}); wait for older files to expire.",
        )
