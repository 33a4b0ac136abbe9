"""Purge: everything of a workspace deleted in the source database goes from storage."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from eclipse_exports.audit.trail import PURGED, AuditTrail, system_actor
from eclipse_exports.queue.keys import (
    PURGED_WORKSPACES,
)
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.deleter import STORAGE_ERRORS, BatchDeleter, as_text, error_cause
from eclipse_exports.retention.summary import CleanupSummary
from eclipse_exports.retention.usage import WorkspaceUsage
from eclipse_exports.storage.client import ExportStorage


@dataclass
class PurgeOutcome:
    """What a purge did: ``complete`` once nothing is left under the workspace's prefix."""

    workspace_id: str
    complete: bool
    summary: CleanupSummary


def purge_workspace(storage: ExportStorage, client: redis.Redis, workspace_id: str, retention_hours: int = 72,
                    deadline: float | None = None) -> PurgeOutcome:
    """Delete every object and incomplete upload under the workspace's prefix and expire its jobs' files.

    The workspace's audit archives (``audit/``) stay: they are the record of what was exported and who got it,
    which an auditor may need after the workspace is gone; they expire after ``ECLIPSE_AUDIT_RETENTION_DAYS``.

    Once nothing failed the workspace is recorded as purged (Redis set
    ``eclipse:exports:purged-workspaces``): later clean-up passes delete any
    file a still-running export writes there, and its usage counter is
    dropped. ``deadline`` (``time.monotonic()`` value) stops early; the
    outcome is then incomplete and the caller runs it again. Raises
    ``ValueError`` for an id outside the pattern of docs/interface.md.
    """
    started = time.monotonic()
    prefix = storage.workspace_prefix(workspace_id)
    summary = CleanupSummary(as_of=datetime.now(UTC))
    store = JobStatusStore(client, retention_hours)
    finished = True
    try:
        for upload in storage.iter_uploads(prefix):
            try:
                storage.abort_upload(upload["Key"], upload["UploadId"])
                summary.tally(workspace_id).uploads_aborted += 1
            except STORAGE_ERRORS as exc:
                summary.record_failure([workspace_id], [upload["Key"]],
                                       f"AbortMultipartUpload failed: {error_cause(exc)}")
        deleter = BatchDeleter(storage, store, summary, dry_run=False, force=True)
        try:
            for obj in _until(storage.iter_objects(prefix), deadline):
                summary.objects_listed += 1
                parsed = storage.parse_key(obj["Key"])
                if parsed is None or parsed.kind != "audit":
                    deleter.add(obj["Key"], workspace_id, obj["Size"], parsed)
        finally:
            deleter.finish()
        finished = deadline is None or time.monotonic() < deadline
    except STORAGE_ERRORS as exc:
        summary.errors.append(f"listing {prefix} failed: {error_cause(exc)}")
    complete = finished and summary.ok
    if complete:
        try:
            client.sadd(PURGED_WORKSPACES, workspace_id)
            WorkspaceUsage(client, storage).forget(workspace_id)
            tally = summary.tally(workspace_id)
            AuditTrail(client).append(workspace_id, PURGED, actor=system_actor("retention"), details={
                "files": tally.files, "reports": tally.reports, "bytesRemoved": tally.bytes_removed,
                "uploadsAborted": tally.uploads_aborted, "auditArchivesKept": True})
        except redis.RedisError as exc:
            summary.errors.append(f"purge of {workspace_id} not recorded: {error_cause(exc)}")
            complete = False
    summary.seconds = time.monotonic() - started
    return PurgeOutcome(workspace_id, complete, summary)


def _until(items: Iterator[dict], deadline: float | None) -> Iterator[dict]:
    for item in items:
        yield item
        if deadline is not None and time.monotonic() >= deadline:
            return


def purged_workspaces(client: redis.Redis) -> set[str]:
    """Workspaces whose purge completed."""
    return {as_text(w) for w in client.smembers(PURGED_WORKSPACES)}


