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

:func:`purge_workspace` removes everything of a deleted workspace;
:func:`discard_job_files` removes what a failed run of one job left.
"""

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from eclipse_exports.config import Settings, known_secrets, redact
from eclipse_exports.models import ID_RE, JobStatus
from eclipse_exports.queue.intake import INTAKE_FLOOR_KEY
from eclipse_exports.queue.keys import (
    DEAD_LETTER_STREAM,
    PURGED_WORKSPACES,
    REQUEST_STREAM,
    WORKSPACE_USAGE_PATTERN,
    job_status_key,
    workspace_usage_key,
)
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.usage import WorkspaceUsage
from eclipse_exports.storage.client import MAX_DELETE_KEYS, ExportStorage, ParsedKey

log = logging.getLogger(__name__)

STORAGE_ERRORS = (ClientError, BotoCoreError)
UNPARSED = "(unparsed)"
MAX_REPORTED_KEYS = 100
MAX_REPORTED_FAILURES = 20
# DeleteObjects requests sent at once while the listing goes on; memory holds this many batches plus one.
BATCHES_IN_FLIGHT = 2
# A run of the job is writing this key again (re-execution, retry): its file is not orphaned.
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED.value, JobStatus.RUNNING.value})


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things live. Built from the environment by :meth:`from_settings`."""

    export_retention: timedelta = timedelta(hours=72)
    report_retention: timedelta = timedelta(days=90)
    stale_upload_age: timedelta = timedelta(hours=1)
    dead_letter_retention: timedelta = timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        """``ECLIPSE_RETENTION_HOURS`` and ``ECLIPSE_REPORT_RETENTION_DAYS``; the other two are fixed."""
        return cls(export_retention=timedelta(hours=settings.retention_hours),
                   report_retention=timedelta(days=settings.report_retention_days))


@dataclass
class WorkspaceTally:
    """What a pass did in one workspace; bytes are object sizes."""

    files: int = 0
    reports: int = 0
    bytes_removed: int = 0
    uploads_aborted: int = 0
    errors: int = 0
    live_files: int = 0
    live_bytes: int = 0


@dataclass
class FailedBatch:
    """Keys S3 did not delete (or that were held back) and why."""

    keys: list[str]
    cause: str


@dataclass
class CleanupSummary:
    """The outcome of one pass (or one purge).

    ``workspaces`` maps workspace id to its :class:`WorkspaceTally`;
    ``failures`` holds the first 20 failed batches in full, ``failed_keys``
    counts all; ``unparseable`` the first 100 keys that were left alone,
    ``unparseable_count`` all of them; ``errors`` anything else that stopped part
    of the pass (a listing or Redis outage). :attr:`ok` is false when anything failed.
    """

    as_of: datetime
    dry_run: bool = False
    workspaces: dict[str, WorkspaceTally] = field(default_factory=dict)
    failures: list[FailedBatch] = field(default_factory=list)
    failed_keys: int = 0
    unparseable: list[str] = field(default_factory=list)
    unparseable_count: int = 0
    errors: list[str] = field(default_factory=list)
    objects_listed: int = 0
    jobs_expired: int = 0
    deferred: int = 0
    stream_entries_trimmed: int = 0
    dead_letters_trimmed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every deletion, abort and update the pass attempted succeeded."""
        return not self.failed_keys and not self.errors

    def tally(self, workspace_id: str) -> WorkspaceTally:
        """The workspace's tally, created on first use."""
        return self.workspaces.setdefault(workspace_id, WorkspaceTally())

    @property
    def files_removed(self) -> int:
        """Export files and reports deleted (or, in a dry run, due)."""
        return sum(t.files + t.reports for t in self.workspaces.values())

    @property
    def bytes_removed(self) -> int:
        """Bytes of the files removed."""
        return sum(t.bytes_removed for t in self.workspaces.values())

    @property
    def uploads_aborted(self) -> int:
        """Incomplete uploads aborted."""
        return sum(t.uploads_aborted for t in self.workspaces.values())

    def record_failure(self, workspace_ids: list[str], keys: list[str], cause: str) -> None:
        """Note a batch that failed, counting an error against each key's workspace."""
        self.failed_keys += len(keys)
        for workspace_id in workspace_ids:
            self.tally(workspace_id).errors += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(FailedBatch(keys, cause))

    def table(self) -> list[dict[str, Any]]:
        """One row per workspace that had anything removed, aborted or failed, sorted by workspace id.

        Keys: ``workspace``, ``files``, ``reports``, ``bytes_removed``, ``uploads_aborted``, ``errors``.
        """
        return [{"workspace": ws, "files": t.files, "reports": t.reports, "bytes_removed": t.bytes_removed,
                 "uploads_aborted": t.uploads_aborted, "errors": t.errors}
                for ws, t in sorted(self.workspaces.items())
                if t.files or t.reports or t.uploads_aborted or t.errors]

    def render(self) -> str:
        """The summary as text: a table of workspaces, totals, failures and unparseable keys."""
        verb, expired = ("would remove", "would expire") if self.dry_run else ("removed", "expired")
        lines = [f"clean-up as of {self.as_of.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
                 f"{' (dry run: nothing deleted)' if self.dry_run else ''}: {verb} "
                 f"{_count(self.files_removed, 'file')} ({self.bytes_removed:,} bytes), "
                 f"{_count(self.uploads_aborted, 'incomplete upload')}; {_count(self.jobs_expired, 'job')} {expired}; "
                 f"{_count(self.objects_listed, 'object')} listed in {self.seconds:.1f}s"]
        rows = self.table()
        if rows:
            header = ("workspace", "files", "reports", "bytes_removed", "uploads_aborted", "errors")
            widths = [max(len(h), *(len(f"{r[h]:,}" if isinstance(r[h], int) else r[h]) for r in rows))
                      for h in header]
            lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
            for r in rows:
                lines.append("  ".join((f"{r[h]:,}" if isinstance(r[h], int) else r[h]).ljust(w)
                                       for h, w in zip(header, widths, strict=True)))
        if self.deferred:
            lines.append(f"{self.deferred:,} expired files kept for now: a run of their job is writing them again")
        if self.stream_entries_trimmed or self.dead_letters_trimmed:
            lines.append(f"trimmed {self.stream_entries_trimmed:,} handled requests and "
                         f"{self.dead_letters_trimmed:,} dead letters")
        for failure in self.failures:
            shown = ", ".join(failure.keys[:5]) + (f" and {len(failure.keys) - 5:,} more"
                                                     if len(failure.keys) > 5 else "")
            lines.append(f"FAILED {len(failure.keys):,} keys ({shown}): {failure.cause}")
        if self.failed_keys > sum(len(f.keys) for f in self.failures):
            lines.append(f"FAILED {self.failed_keys:,} keys in all; the next run retries them")
        for error in self.errors:
            lines.append(f"ERROR {error}")
        if self.unparseable_count:
            lines.append(f"{self.unparseable_count:,} keys under the workspaces prefix do not parse and were left "
                         f"alone: {', '.join(self.unparseable[:10])}"
                         + (" …" if self.unparseable_count > 10 else ""))
        return "\n".join(lines)


def _cause(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}", known_secrets())


Item = tuple[str, str, int, ParsedKey | None]
"""A key due for deletion: (key, workspace id, size in bytes, parsed key or None)."""


@dataclass
class _BatchOutcome:
    removed: list[Item] = field(default_factory=list)
    failed: list[tuple[list[Item], str]] = field(default_factory=list)
    deferred: list[Item] = field(default_factory=list)
    expired: int = 0


class _BatchDeleter:
    """Collects keys to delete and sends them in ``DeleteObjects`` batches of at most 1,000.

    Before each batch it reads the jobs' statuses in one pipeline: a job a run
    is writing again keeps its file (unless ``force``); a ``completed`` job whose
    ``filePath`` is the key turns ``expired`` before its file goes, so a failed
    delete leaves an ``expired`` job whose file the next pass removes.

    Batches are sent from background threads while the caller lists the
    next page, so listing and deleting overlap; at most ``BATCHES_IN_FLIGHT``
    batches are in flight and one filling, so memory stays bounded. Outcomes are applied to
    the summary in the caller's thread. Call :meth:`finish` at the end.
    """

    def __init__(self, storage: ExportStorage, store: JobStatusStore, summary: CleanupSummary,
                 dry_run: bool, force: bool = False, batch_size: int = MAX_DELETE_KEYS) -> None:
        self.storage, self.store, self.summary = storage, store, summary
        self.dry_run, self.force = dry_run, force
        self.batch_size = min(batch_size, MAX_DELETE_KEYS)
        self.pending: list[Item] = []
        self.kept_bytes: dict[str, int] = {}
        self._sender = ThreadPoolExecutor(max_workers=BATCHES_IN_FLIGHT, thread_name_prefix="s3-delete")
        self._in_flight: deque[Future] = deque()

    def add(self, key: str, workspace_id: str, size: int, parsed: ParsedKey | None) -> None:
        self.pending.append((key, workspace_id, size, parsed))
        if len(self.pending) >= self.batch_size:
            self._send()

    def finish(self) -> None:
        """Send what is pending and wait for every batch; the summary is complete afterwards."""
        try:
            self._send()
            while self._in_flight:
                self._collect()
        finally:
            self._sender.shutdown(wait=True)

    def _send(self) -> None:
        batch, self.pending = self.pending, []
        while len(self._in_flight) >= BATCHES_IN_FLIGHT:
            self._collect()
        if batch:
            self._in_flight.append(self._sender.submit(self._process, batch))

    def _collect(self) -> None:
        """Wait for the oldest batch in flight and apply its outcome."""
        outcome = self._in_flight.popleft().result()
        for item in outcome.removed:
            self._count_removed(item)
        for item in outcome.deferred:
            self._kept(item)
        self.summary.deferred += len(outcome.deferred)
        self.summary.jobs_expired += outcome.expired
        for items, cause in outcome.failed:
            log.warning("clean-up: %d keys not deleted: %s", len(items), cause)
            self.summary.record_failure(sorted({ws for _k, ws, _s, _p in items}), [k for k, *_ in items], cause)
            for item in items:
                self._kept(item)

    def _process(self, batch: list[Item]) -> _BatchOutcome:
        """In the sender thread: statuses, then the delete. Touches nothing shared."""
        outcome = _BatchOutcome()
        try:
            batch, expire, outcome.deferred = self._check_jobs(batch)
            if not self.dry_run and expire:
                self.store.expired(expire)
            outcome.expired = len(expire)
        except redis.RedisError as exc:
            outcome.failed.append((batch, "job statuses could not be read or updated, so nothing was deleted: "
                                          + _cause(exc)))
            return outcome
        if self.dry_run or not batch:
            outcome.removed = batch
            return outcome
        try:
            refused = dict(self.storage.delete_keys([key for key, *_ in batch]))
        except STORAGE_ERRORS as exc:
            outcome.failed.append((batch, f"DeleteObjects failed: {_cause(exc)}"))
            return outcome
        outcome.removed = [item for item in batch if item[0] not in refused]
        if refused:
            causes = sorted(set(refused.values()))
            outcome.failed.append(([item for item in batch if item[0] in refused],
                                   "S3 refused: " + "; ".join(causes[:3])))
        return outcome

    def _check_jobs(self, batch: list[Item]) -> tuple[list[Item], list[str], list[Item]]:
        """(items to delete, job ids to expire, items deferred because a run of their job is active)."""
        exports = [(item, item[3].job_id) for item in batch if item[3] is not None and item[3].kind == "export"]
        if not exports:
            return batch, [], []
        pipe = self.store.client.pipeline(transaction=False)
        for _item, job_id in exports:
            pipe.hmget(job_status_key(job_id), "status", "filePath")
        states = dict(zip((item[0] for item, _ in exports), pipe.execute(), strict=True))
        keep, expire, deferred = [], [], []
        for item in batch:
            status, file_path = (_text(v) for v in states.get(item[0], (None, None)))
            if status in ACTIVE_STATUSES and not self.force:
                deferred.append(item)
                continue
            keep.append(item)
            if status == JobStatus.COMPLETED.value and file_path == item[0]:
                expire.append(item[3].job_id)
        return keep, expire, deferred

    def _count_removed(self, item: Item) -> None:
        _key, workspace_id, size, parsed = item
        tally = self.summary.tally(workspace_id)
        if parsed is not None and parsed.kind == "report":
            tally.reports += 1
        else:
            tally.files += 1
        tally.bytes_removed += size

    def _kept(self, item: Item) -> None:
        """A due export file stays (failed or deferred): it still counts toward its workspace's usage."""
        _key, workspace_id, size, parsed = item
        if parsed is None or parsed.kind == "export":
            self.kept_bytes[workspace_id] = self.kept_bytes.get(workspace_id, 0) + size


def _count(number: int, noun: str) -> str:
    """``1 file``, ``12 files``: a count with thousands separators and its noun in the right number."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


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
        purged = {_text(w) for w in client.smembers(PURGED_WORKSPACES)}
    except redis.RedisError as exc:
        summary.errors.append(f"purged workspaces unknown (Redis): {_cause(exc)}")
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
                    summary.record_failure([workspace_id], [key], f"AbortMultipartUpload failed: {_cause(exc)}")
                    continue
            summary.tally(workspace_id).uploads_aborted += 1
    except STORAGE_ERRORS as exc:
        summary.errors.append(f"listing incomplete uploads failed: {_cause(exc)}")
    return live


def _sweep_objects(storage: ExportStorage, store: JobStatusStore, summary: CleanupSummary,
                   policy: RetentionPolicy, as_of: datetime, dry_run: bool, purged: set[str], counters: "_Counters",
                   batch_size: int) -> bool:
    """List, classify, delete; reconcile each workspace's counter as the listing leaves it.

    Returns whether the listing reached its end.
    """
    deleter = _BatchDeleter(storage, store, summary, dry_run, batch_size=batch_size)
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
        summary.errors.append(f"listing stopped after {summary.objects_listed:,} objects: {_cause(exc)}")
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
            self.summary.errors.append(f"usage of {workspace_id} not reconciled: {_cause(exc)}")

    def add(self, workspace_id: str, delta: int) -> None:
        if self.dry_run or not ID_RE.fullmatch(workspace_id):
            return
        try:
            self.usage.add(workspace_id, delta)
        except redis.RedisError as exc:
            self.summary.errors.append(f"usage of {workspace_id} not updated: {_cause(exc)}")

    def zero_unlisted(self, client: redis.Redis) -> None:
        """Workspaces the listing never met have no files left: their counters keep only live uploads."""
        pending = set(self.uploading)
        try:
            prefix = workspace_usage_key("")
            pending |= {_text(raw)[len(prefix):] for raw in client.scan_iter(match=WORKSPACE_USAGE_PATTERN,
                                                                             count=1000)}
        except redis.RedisError as exc:
            self.summary.errors.append(f"usage counters not reconciled: {_cause(exc)}")
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
            minid = min(cutoff, _stream_id(_text(floor)))
            summary.stream_entries_trimmed = client.xtrim(REQUEST_STREAM, minid=f"{minid[0]}-{minid[1]}",
                                                          approximate=False)
        dead_cutoff = int((as_of - policy.dead_letter_retention).timestamp() * 1000)
        summary.dead_letters_trimmed = client.xtrim(DEAD_LETTER_STREAM, minid=f"{dead_cutoff}-0", approximate=False)
    except redis.RedisError as exc:
        summary.errors.append(f"streams not trimmed: {_cause(exc)}")


@dataclass
class PurgeOutcome:
    """What a purge did: ``complete`` once nothing is left under the workspace's prefix."""

    workspace_id: str
    complete: bool
    summary: CleanupSummary


def purge_workspace(storage: ExportStorage, client: redis.Redis, workspace_id: str, retention_hours: int = 72,
                    deadline: float | None = None) -> PurgeOutcome:
    """Delete every object and incomplete upload under the workspace's prefix and expire its jobs' files.

    Once nothing failed the workspace is recorded as purged (Redis set
    ``eclipse:exports:purged-workspaces``): later clean-up passes delete any
    file a still-running export writes there, and its usage counter is
    dropped. ``deadline`` (``time.monotonic()`` value) stops early; the
    outcome is then incomplete and the caller runs it again. Raises
    ``ValueError`` for an id outside the CONTRACT pattern.
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
                summary.record_failure([workspace_id], [upload["Key"]], f"AbortMultipartUpload failed: {_cause(exc)}")
        deleter = _BatchDeleter(storage, store, summary, dry_run=False, force=True)
        try:
            for obj in _until(storage.iter_objects(prefix), deadline):
                summary.objects_listed += 1
                deleter.add(obj["Key"], workspace_id, obj["Size"], storage.parse_key(obj["Key"]))
        finally:
            deleter.finish()
        finished = deadline is None or time.monotonic() < deadline
    except STORAGE_ERRORS as exc:
        summary.errors.append(f"listing {prefix} failed: {_cause(exc)}")
    complete = finished and summary.ok
    if complete:
        try:
            client.sadd(PURGED_WORKSPACES, workspace_id)
            WorkspaceUsage(client, storage).forget(workspace_id)
        except redis.RedisError as exc:
            summary.errors.append(f"purge of {workspace_id} not recorded: {_cause(exc)}")
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
    return {_text(w) for w in client.smembers(PURGED_WORKSPACES)}


@dataclass
class DiscardOutcome:
    """What :func:`discard_job_files` removed for one failed job."""

    uploads_aborted: int = 0
    files_deleted: int = 0
    bytes_removed: int = 0
    skipped: str | None = None


def discard_job_files(storage: ExportStorage, client: redis.Redis, job_id: str, workspace_id: str, run_id: str,
                      expected_key: str | None = None) -> DiscardOutcome:
    """Abort the job's incomplete uploads and delete a file its failed run may have completed.

    Looks for uploads under the workspace's ``exports/`` whose key parses to
    ``job_id``, and for an object at ``expected_key`` (the key the run
    writes) or the status hash's ``filePath``. Leaves everything alone when
    the job is ``completed`` (its file is delivered) or another run of it is
    running (its status names a different ``runId``). The usage counter loses what was removed.
    Raises botocore and Redis errors (the caller's sensor retries on its next tick).
    """
    store = JobStatusStore(client)
    usage = WorkspaceUsage(client, storage)
    outcome = DiscardOutcome()
    fields = store.get(job_id)
    status = fields.get("status")
    if status == JobStatus.COMPLETED.value or (status in ACTIVE_STATUSES and fields.get("runId") not in (None, run_id)):
        outcome.skipped = f"the job is {status} (run {fields.get('runId')})"
        return outcome
    for upload in storage.iter_uploads(storage.exports_prefix(workspace_id)):
        parsed = storage.parse_key(upload["Key"])
        if parsed is None or parsed.job_id != job_id:
            continue
        size = storage.upload_bytes(upload["Key"], upload["UploadId"])
        storage.abort_upload(upload["Key"], upload["UploadId"])
        usage.add(workspace_id, -size)
        outcome.uploads_aborted += 1
    for key in {k for k in (expected_key, fields.get("filePath")) if k}:
        parsed = storage.parse_key(key)
        if parsed is None or parsed.job_id != job_id or parsed.workspace_id != workspace_id:
            continue
        size = storage.object_size(key)
        if size is None:
            continue
        storage.delete(key)
        usage.add(workspace_id, -size)
        outcome.files_deleted += 1
        outcome.bytes_removed += size
    return outcome
