"""The daily archive of a workspace's export audit trail: ``workspaces/{ws}/audit/{YYYY-MM-DD}.jsonl.gz``.

One gzip JSONL object per workspace and day (UTC), written for every day from the workspace's first entry on,
empty days included, so a missing day is visible. Its lines:

1. the header ``{"eclipseAuditArchive": "header", "version": 1, "workspaceId", "day", "partial",
   "previousDay", "previousSha256"}``: ``previousSha256`` is the SHA-256 of the previous day's stored object
   (the hash chain; the first day names none), ``partial`` is true for the current day; no time of writing,
   so a complete day is the same bytes whenever it is written;
2. one line per entry, oldest first, duplicates (same ``eventId``) dropped: ``eventId``, ``time``,
   ``workspaceId``, ``jobId``, ``actor``, ``event``, ``details``;
3. the trailer ``{"eclipseAuditArchive": "signature", "entries", "contentSha256", "keyId", "signature"}``:
   the SHA-256 of every byte (uncompressed) before it and its Ed25519 signature (``signing.py``).

A complete day is written once and never again; a partial one is replaced when its day is archived after it
ended. Archiving a day first writes any earlier day not archived yet (in order, so the chain has no holes), and
trims the Redis stream only up to the end of the last complete day written. Archives older than
``ECLIPSE_AUDIT_RETENTION_DAYS`` are deleted here, and only here: export retention and purges leave them.
"""

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eclipse_exports.audit.signing import key_id, sign
from eclipse_exports.audit.trail import AuditEntry, AuditTrail
from eclipse_exports.queue.keys import audit_lock_key
from eclipse_exports.storage.client import ExportStorage, ObjectMissing

HEADER, TRAILER, MARK = "header", "signature", "eclipseAuditArchive"
CONTENT_TYPE = "application/gzip"
READ_BYTES = 1 << 16
LOCK_SECONDS = 600


class ArchiveRefused(ValueError):
    """A day that cannot be archived now (in the future, or before an archived later day); one readable line."""


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True)
class StoredArchive:
    """One archive object as listed: its ``day``, ``key`` and ``size``."""

    day: date
    key: str
    size: int


@dataclass
class ArchiveOutcome:
    """What archiving one day did: the days written (``written``: day → ``complete`` or ``partial``), the day
    asked for, its key, entries and SHA-256, whether it was already complete (``unchanged``), stream entries
    trimmed and archives expired."""

    day: date
    key: str
    entries: int = 0
    sha256: str = ""
    partial: bool = False
    unchanged: bool = False
    written: dict[date, str] = field(default_factory=dict)
    trimmed: int = 0
    expired: list[date] = field(default_factory=list)


def list_archives(storage: ExportStorage, workspace_id: str) -> list[StoredArchive]:
    """The workspace's archives, oldest day first (objects under ``audit/`` that are not archives are ignored)."""
    found = []
    for obj in storage.iter_objects(storage.audit_prefix(workspace_id)):
        parsed = storage.parse_key(obj["Key"])
        if parsed is not None and parsed.kind == "audit" and parsed.workspace_id == workspace_id:
            found.append(StoredArchive(parsed.day, obj["Key"], int(obj["Size"])))
    return sorted(found, key=lambda a: a.day)


def read_lines(storage: ExportStorage, key: str) -> Iterator[bytes]:
    """The uncompressed lines of the archive at ``key`` (each with its ``\\n``), streamed.

    Raises :class:`~eclipse_exports.storage.client.ObjectMissing`, ``OSError``/``EOFError`` for a body
    that is not gzip.
    """
    stored = storage.open_object(key)
    try:
        with gzip.GzipFile(fileobj=stored.body, mode="rb") as unzipped:
            yield from io.BufferedReader(unzipped, READ_BYTES)  # type: ignore[arg-type]
    finally:
        stored.body.close()


def read_header(storage: ExportStorage, key: str) -> dict[str, Any] | None:
    """The header line of the archive at ``key``; ``None`` when it has none or cannot be read."""
    try:
        for line in read_lines(storage, key):
            header = json.loads(line)
            return header if isinstance(header, dict) and header.get(MARK) == HEADER else None
    except (ObjectMissing, OSError, EOFError, ValueError):
        return None
    return None


def archive_entries(storage: ExportStorage, key: str) -> Iterator[AuditEntry]:
    """The entries of the archive at ``key``, in order (header and trailer skipped). Raises like :func:`read_lines`
    and ``ValueError`` for a line that is not an entry."""
    for line in read_lines(storage, key):
        data = json.loads(line)
        if isinstance(data, dict) and MARK not in data:
            yield AuditEntry.from_json(data)


def object_sha256(storage: ExportStorage, key: str) -> str:
    """Hex SHA-256 of the stored object's bytes (as stored, compressed)."""
    digest = hashlib.sha256()
    stored = storage.open_object(key)
    try:
        while chunk := stored.body.read(READ_BYTES):
            digest.update(chunk)
    finally:
        stored.body.close()
    return digest.hexdigest()


class AuditArchiver:
    """Writes the daily archives of one workspace: ``storage`` (S3), ``trail`` (the Redis stream), ``key`` (the
    Ed25519 signing key), ``retention_days`` (``ECLIPSE_AUDIT_RETENTION_DAYS``)."""

    def __init__(self, storage: ExportStorage, trail: AuditTrail, key: Ed25519PrivateKey,
                 retention_days: int = 400) -> None:
        self.storage, self.trail, self.key, self.retention_days = storage, trail, key, retention_days

    def archive(self, workspace_id: str, day: date, now: datetime | None = None) -> ArchiveOutcome:
        """Archive ``day`` of ``workspace_id`` (and any earlier day not archived yet), as the module docstring says.

        Raises :class:`ArchiveRefused` for a day after today (UTC) or before an archived later day, botocore
        and Redis errors when S3 or Redis fail (nothing is trimmed then).
        """
        now = now or datetime.now(UTC)
        today = now.astimezone(UTC).date()
        if day > today:
            raise ArchiveRefused(f"{day} has not begun yet (today is {today} UTC); nothing to archive")
        # One archiver per workspace at a time: two runs of a backfill filling the same days must not trim
        # entries the other is still reading.
        with self.trail.client.lock(audit_lock_key(workspace_id), timeout=LOCK_SECONDS,
                                    blocking_timeout=LOCK_SECONDS):
            return self._archive(workspace_id, day, today)

    def _archive(self, workspace_id: str, day: date, today: date) -> ArchiveOutcome:
        archives = list_archives(self.storage, workspace_id)
        outcome = ArchiveOutcome(day, self.storage.audit_key(workspace_id, day))
        outcome.expired = self._expire(workspace_id, archives, today)
        archives = [a for a in archives if a.day not in outcome.expired]
        if later := [a.day for a in archives if a.day > day]:
            if day not in {a.day for a in archives}:
                raise ArchiveRefused(f"{day} is before the archived day {later[0]}: the chain cannot take a day "
                                     "inserted before days already archived")
        existing = {a.day: a for a in archives}
        if day in existing and not self._partial(existing[day]):
            outcome.unchanged, outcome.sha256 = True, object_sha256(self.storage, existing[day].key)
            return outcome
        before = [a for a in archives if a.day < day]
        previous = before[-1] if before else None
        if previous is not None and self._partial(previous):  # its day is over now: written again, complete
            start, previous = previous.day, (before[-2] if len(before) > 1 else None)
        elif previous is not None:
            start = previous.day + timedelta(days=1)
        else:
            first = self.trail.first_time(workspace_id)
            start = min(day, first.date()) if first else day
        previous_ref = (previous.day, object_sha256(self.storage, previous.key)) if previous else None
        current = start
        while current <= day:
            partial = current >= today
            sha256, entries = self._write_day(workspace_id, current, previous_ref, partial)
            outcome.written[current] = "partial" if partial else "complete"
            if not partial:
                self.trail.mark_archived(workspace_id, current)
                outcome.trimmed += self.trail.trim_before(workspace_id, day_start(current + timedelta(days=1)))
            previous_ref = (current, sha256)
            if current == day:
                outcome.entries, outcome.sha256, outcome.partial = entries, sha256, partial
            current += timedelta(days=1)
        return outcome

    def _write_day(self, workspace_id: str, day: date, previous: tuple[date, str] | None,
                   partial: bool) -> tuple[str, int]:
        """Write one day's archive; returns the stored object's SHA-256 and its entry count."""
        key = self.storage.audit_key(workspace_id, day)
        content = hashlib.sha256()
        seen: set[str] = set()
        count = 0
        with self.storage.open_upload(key, CONTENT_TYPE, key.rsplit("/", 1)[-1]) as upload:  # noqa: SIM117
            with gzip.GzipFile(fileobj=upload, mode="wb", mtime=0, compresslevel=6) as sink:
                def put(record: dict) -> None:
                    line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                    content.update(line + b"\n")
                    sink.write(line + b"\n")

                # No time of writing: a complete day's archive is the same bytes whenever it is written.
                put({MARK: HEADER, "version": 1, "workspaceId": workspace_id, "day": day.isoformat(),
                     "partial": partial, "previousDay": previous[0].isoformat() if previous else None,
                     "previousSha256": previous[1] if previous else None})
                for entry in self.trail.entries(workspace_id, day_start(day), day_start(day + timedelta(days=1))):
                    if entry.event_id in seen:
                        continue
                    seen.add(entry.event_id)
                    put(entry.to_json())
                    count += 1
                digest = content.hexdigest()
                trailer = {MARK: TRAILER, "entries": count, "contentSha256": digest, "keyId": key_id(self.key),
                           "signature": sign(self.key, digest)}
                sink.write(json.dumps(trailer, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        return upload.sha256, count

    def _partial(self, archive: StoredArchive) -> bool:
        """Whether a stored archive says it is partial. An unreadable one counts as complete: it is never
        overwritten (``audit verify`` reports it), so evidence of tampering stays."""
        return bool((read_header(self.storage, archive.key) or {}).get("partial", False))

    def _expire(self, workspace_id: str, archives: list[StoredArchive], today: date) -> list[date]:
        """Delete the archives older than the retention period; returns their days."""
        cutoff = today - timedelta(days=self.retention_days)
        expired = [a for a in archives if a.day < cutoff]
        for archive in expired:
            self.storage.delete(archive.key, workspace_id=workspace_id)
        return [a.day for a in expired]
