"""Retention: nothing outlives its retention, no upload is left behind, without Dagster.

:func:`run_cleanup` is one pass of the clean-up (the ``export_cleanup_job``
of ``export_cleanup_schedule`` and ``eclipse-exports cleanup`` both call it),
judging ages as of ``as_of``:

1. incomplete multipart uploads under ``{prefix}/workspaces/`` started more
   than an hour before ``as_of`` are aborted;
2. every object under ``{prefix}/workspaces/`` is listed page by page, in key
   order, and classified on the fly:

   - an export file (``exports/``) whose ``LastModified`` is at least
     ``ECLIPSE_RETENTION_HOURS`` old, or any file of a purged workspace, is
     deleted and its job turns ``expired`` (no ``downloadUrl``);
   - a scheduled report (``reports/``) older than ``ECLIPSE_REPORT_RETENTION_DAYS`` is deleted;
   - a key that does not parse is reported and left alone;
   - everything else is live: its bytes are summed per workspace and the
     workspace's usage counter is set from them once the listing has passed it;

   deletions go out in ``DeleteObjects`` batches of at most 1,000 keys, so
   memory stays flat however many objects there are;
3. handled request-stream entries older than the retention, and dead letters
   older than 30 days, are trimmed (``XTRIM MINID``).

Nothing outside ``{prefix}/workspaces/`` is ever listed, so nothing outside it
is touched. A batch S3 refuses is recorded with its keys and the cause and
the pass goes on; those files stay listed, so the next pass deletes them.

The batches go through :class:`~eclipse_exports.retention.deleter.BatchDeleter`; a purge
(:mod:`~eclipse_exports.retention.purge`) and a failed job's leftovers
(:mod:`~eclipse_exports.retention.leftovers`) have modules of their own.
"""

import time
from datetime import UTC, datetime

import redis

from eclipse_exports.models import ID_RE
from eclipse_exports.queue.intake import INTAKE_FLOOR_KEY
from eclipse_exports.queue.keys import (
    DEAD_LETTER_STREAM,
    PURGED_WORKSPACES,
    REQUEST_STREAM,
    WORKSPACE_USAGE_PATTERN,
    workspace_usage_key,
)
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.deleter import STORAGE_ERRORS, BatchDeleter, as_text, error_cause
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.retention.summary import MAX_REPORTED_KEYS, CleanupSummary
from eclipse_exports.retention.usage import WorkspaceUsage
from eclipse_exports.storage.client import MAX_DELETE_KEYS, ExportStorage

UNPARSED = "(unparsed)"


def _workspace_of(storage: ExportStorage, key: str) -> str:
    rest = key[len(storage.workspaces_prefix()):]
    return rest.split("/", 1)[0] if "/" in rest else UNPARSED


def _in_exports(storage: ExportStorage, key: str) -> bool:
    """Whether a key lies in a workspace's ``exports/`` folder (what usage counts), parsed or not."""
    return key[len(storage.workspaces_prefix()):].split("/")[1:2] == ["exports"]


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_cleanup(storage: ExportStorage, client: redis.Redis, policy: RetentionPolicy,
                as_of: datetime | None = None, dry_run: bool = False,
                batch_size: int = MAX_DELETE_KEYS) -> CleanupSummary:
    """One clean-up pass as of ``as_of`` (default now); see the module docstring.

    ``client`` is the Redis with job statuses, usage counters and streams.
    ``dry_run`` lists and classifies but deletes, aborts, updates and trims
    nothing. ``batch_size`` (at most 1,000) is the keys per ``DeleteObjects``.
    Returns the summary; raises nothing for S3 or Redis failures
    (they are in the summary, and :attr:`CleanupSummary.ok` is false).
    """
    started = time.monotonic()
    as_of = _as_utc(as_of or datetime.now(UTC))
    summary = CleanupSummary(as_of=as_of, dry_run=dry_run)
    store = JobStatusStore(client, int(policy.export_retention.total_seconds() // 3600))
    usage = WorkspaceUsage(client, storage)
    try:
        purged = {as_text(w) for w in client.smembers(PURGED_WORKSPACES)}
    except redis.RedisError as exc:
        summary.errors.append(f"purged workspaces unknown (Redis): {error_cause(exc)}")
        purged = set()

    uploading = _abort_stale_uploads(storage, summary, as_of - policy.stale_upload_age, dry_run)
    counters = _Counters(storage, usage, summary, uploading, dry_run)
    listed_all = _sweep_objects(storage, store, summary, policy, as_of, dry_run, purged, counters, batch_size)
    if listed_all:
        counters.zero_unlisted(client)
    if not dry_run:
        _trim_streams(client, summary, as_of, policy)
    summary.seconds = time.monotonic() - started
    return summary


def _abort_stale_uploads(storage: ExportStorage, summary: CleanupSummary, cutoff: datetime,
                         dry_run: bool) -> set[str]:
    """Abort uploads started before ``cutoff``; returns the workspaces with younger (live) uploads."""
    live: set[str] = set()
    try:
        for upload in storage.iter_uploads(storage.workspaces_prefix()):
            key = upload["Key"]
            parsed = storage.parse_key(key)
            workspace_id = parsed.workspace_id if parsed else _workspace_of(storage, key)
            if _as_utc(upload["Initiated"]) > cutoff:
                live.add(workspace_id)
                continue
            if not dry_run:
                try:
                    storage.abort_upload(key, upload["UploadId"])
                except STORAGE_ERRORS as exc:
                    summary.record_failure([workspace_id], [key], f"AbortMultipartUpload failed: {error_cause(exc)}")
                    continue
            summary.tally(workspace_id).uploads_aborted += 1
    except STORAGE_ERRORS as exc:
        summary.errors.append(f"listing incomplete uploads failed: {error_cause(exc)}")
    return live


def _sweep_objects(storage: ExportStorage, store: JobStatusStore, summary: CleanupSummary,
                   policy: RetentionPolicy, as_of: datetime, dry_run: bool, purged: set[str], counters: "_Counters",
                   batch_size: int) -> bool:
    """List, classify, delete; reconcile each workspace's counter as the listing leaves it.

    Returns whether the listing reached its end.
    """
    deleter = BatchDeleter(storage, store, summary, dry_run, batch_size=batch_size)
    export_cutoff, report_cutoff = as_of - policy.export_retention, as_of - policy.report_retention
    current: str | None = None
    listed_all = True
    try:
        for obj in storage.iter_objects(storage.workspaces_prefix()):
            summary.objects_listed += 1
            key = obj["Key"]
            parsed = storage.parse_key(key)
            workspace_id = parsed.workspace_id if parsed else _workspace_of(storage, key)
            if workspace_id != current:
                if current is not None:
                    counters.reconcile(current)
                current = workspace_id
            modified = _as_utc(obj["LastModified"])
            if parsed is not None and parsed.kind == "audit":
                continue  # audit archives have their own retention (eclipse_exports/audit/archive.py)
            if workspace_id in purged:
                deleter.add(key, workspace_id, obj["Size"], parsed)
            elif parsed is None:
                summary.unparseable_count += 1
                if len(summary.unparseable) < MAX_REPORTED_KEYS:
                    summary.unparseable.append(key)
                if _in_exports(storage, key):
                    summary.tally(workspace_id).live_bytes += obj["Size"]
            elif (parsed.kind == "export" and modified <= export_cutoff) or \
                    (parsed.kind == "report" and modified <= report_cutoff):
                deleter.add(key, workspace_id, obj["Size"], parsed)
            elif parsed.kind == "export":
                tally = summary.tally(workspace_id)
                tally.live_files += 1
                tally.live_bytes += obj["Size"]
    except STORAGE_ERRORS as exc:
        summary.errors.append(f"listing stopped after {summary.objects_listed:,} objects: {error_cause(exc)}")
        listed_all = False
    finally:
        deleter.finish()
    if current is not None and listed_all:
        counters.reconcile(current)
    # Files that failed to go, or wait for a run rewriting them, are still there and still count.
    for workspace_id, size in deleter.kept_bytes.items():
        counters.add(workspace_id, size)
    return listed_all


class _Counters:
    """Sets each workspace's usage counter from what the pass found live (nothing in a dry run)."""

    def __init__(self, storage: ExportStorage, usage: WorkspaceUsage, summary: CleanupSummary,
                 uploading: set[str], dry_run: bool) -> None:
        self.storage, self.usage, self.summary = storage, usage, summary
        self.uploading, self.dry_run = uploading, dry_run
        self.done: set[str] = set()

    def reconcile(self, workspace_id: str) -> None:
        """Counter := live export bytes listed + the workspace's incomplete uploads, measured now."""
        self.done.add(workspace_id)
        if self.dry_run or not ID_RE.fullmatch(workspace_id):
            return
        live = self.summary.workspaces[workspace_id].live_bytes if workspace_id in self.summary.workspaces else 0
        try:
            if workspace_id in self.uploading:
                live += self.storage.workspace_upload_bytes(workspace_id)
            self.usage.reconcile(workspace_id, live)
        except (*STORAGE_ERRORS, redis.RedisError) as exc:
            self.summary.errors.append(f"usage of {workspace_id} not reconciled: {error_cause(exc)}")

    def add(self, workspace_id: str, delta: int) -> None:
        if self.dry_run or not ID_RE.fullmatch(workspace_id):
            return
        try:
            self.usage.add(workspace_id, delta)
        except redis.RedisError as exc:
            self.summary.errors.append(f"usage of {workspace_id} not updated: {error_cause(exc)}")

    def zero_unlisted(self, client: redis.Redis) -> None:
        """Workspaces the listing never met have no files left: their counters keep only live uploads."""
        pending = set(self.uploading)
        try:
            prefix = workspace_usage_key("")
            pending |= {as_text(raw)[len(prefix):] for raw in client.scan_iter(match=WORKSPACE_USAGE_PATTERN,
                                                                             count=1000)}
        except redis.RedisError as exc:
            self.summary.errors.append(f"usage counters not reconciled: {error_cause(exc)}")
        for workspace_id in sorted(pending - self.done):
            self.uploading.add(workspace_id)
            self.reconcile(workspace_id)


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _trim_streams(client: redis.Redis, summary: CleanupSummary, as_of: datetime, policy: RetentionPolicy) -> None:
    """XTRIM MINID: handled requests older than the retention (never past the intake's last handled
    entry, so no unhandled entry goes), dead letters older than 30 days."""
    try:
        floor = client.get(INTAKE_FLOOR_KEY)
        if floor:
            cutoff = (int((as_of - policy.export_retention).timestamp() * 1000), 0)
            minid = min(cutoff, _stream_id(as_text(floor)))
            summary.stream_entries_trimmed = client.xtrim(REQUEST_STREAM, minid=f"{minid[0]}-{minid[1]}",
                                                          approximate=False)
        dead_cutoff = int((as_of - policy.dead_letter_retention).timestamp() * 1000)
        summary.dead_letters_trimmed = client.xtrim(DEAD_LETTER_STREAM, minid=f"{dead_cutoff}-0", approximate=False)
    except redis.RedisError as exc:
        summary.errors.append(f"streams not trimmed: {error_cause(exc)}")

