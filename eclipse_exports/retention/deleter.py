"""Deleting keys in ``DeleteObjects`` batches of at most 1,000, with their jobs' statuses read first."""

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from eclipse_exports.config import known_secrets, redact
from eclipse_exports.models import JobStatus
from eclipse_exports.queue.keys import (
    job_status_key,
)
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.summary import CleanupSummary
from eclipse_exports.storage.client import MAX_DELETE_KEYS, ExportStorage
from eclipse_exports.storage.keys import ParsedKey

log = logging.getLogger(__name__)

STORAGE_ERRORS = (ClientError, BotoCoreError)
# DeleteObjects requests sent at once while the listing goes on; memory holds this many batches plus one.
BATCHES_IN_FLIGHT = 2
# A run of the job is writing this key again (re-execution, retry): its file is not orphaned.
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED.value, JobStatus.RUNNING.value})


def error_cause(exc: BaseException) -> str:
    """``ClientError: …`` with credentials and known secrets masked: what a summary records of a failure."""
    return redact(f"{type(exc).__name__}: {exc}", known_secrets())


Item = tuple[str, str, int, ParsedKey | None]
"""A key due for deletion: (key, workspace id, size in bytes, parsed key or None)."""


@dataclass
class _BatchOutcome:
    removed: list[Item] = field(default_factory=list)
    failed: list[tuple[list[Item], str]] = field(default_factory=list)
    deferred: list[Item] = field(default_factory=list)
    expired: int = 0


class BatchDeleter:
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
                                          + error_cause(exc)))
            return outcome
        if self.dry_run or not batch:
            outcome.removed = batch
            return outcome
        try:
            refused = dict(self.storage.delete_keys([(key, ws) for key, ws, *_ in batch]))
        except STORAGE_ERRORS as exc:
            outcome.failed.append((batch, f"DeleteObjects failed: {error_cause(exc)}"))
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
            status, file_path = (as_text(v) for v in states.get(item[0], (None, None)))
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


def as_text(value: Any) -> str | None:
    """A Redis reply as text (``None`` stays ``None``)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


