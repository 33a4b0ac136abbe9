"""``audit verify``: every archived day of a workspace checked for signature, content hash and chain.

A day is bad when its archive was modified (content not matching its recorded SHA-256, or a signature that does
not verify with the public key), deleted (named as the previous day by the next archive, or recorded as archived
in Redis but gone), reordered or moved (its header names another day or workspace, or the chain's hash of it does
not match), or cannot be read at all. Days older than the retention period may be missing (they expired).
"""

import gzip
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eclipse_exports.audit.archive import HEADER, MARK, READ_BYTES, TRAILER, StoredArchive, list_archives
from eclipse_exports.audit.signing import key_id, signature_valid
from eclipse_exports.audit.trail import AuditEntry, AuditTrail
from eclipse_exports.storage.client import ExportStorage


@dataclass
class VerifyReport:
    """The outcome: ``problems`` as ``(day, why)`` in day order; ``first_bad`` the earliest bad day."""

    workspace_id: str
    days_checked: int = 0
    entries: int = 0
    partial_days: list[date] = field(default_factory=list)
    problems: list[tuple[date, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> date | None:
        return min((day for day, _ in self.problems), default=None)


@dataclass
class _Scan:
    """One archive read through: its header, trailer, entry count, content and object SHA-256, or why not."""

    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    entries: int = 0
    foreign_entries: int = 0
    content_sha256: str = ""
    object_sha256: str = ""
    error: str | None = None


class _Digesting(io.RawIOBase):
    def __init__(self, body: Any) -> None:
        self.body, self.digest = body, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.body.read(len(buffer))
        self.digest.update(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _scan(storage: ExportStorage, archive: StoredArchive, workspace_id: str) -> _Scan:
    scan, content = _Scan(), hashlib.sha256()
    stored = storage.open_object(archive.key)
    reader = _Digesting(stored.body)
    try:
        with gzip.GzipFile(fileobj=io.BufferedReader(reader, READ_BYTES), mode="rb") as unzipped:
            for number, line in enumerate(io.BufferedReader(unzipped, READ_BYTES), 1):  # type: ignore[arg-type]
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"line {number} is not a JSON object")
                if scan.trailer is not None:
                    raise ValueError(f"line {number} follows the signature")
                if record.get(MARK) == TRAILER:
                    scan.trailer = record
                    continue
                content.update(line)
                if number == 1:
                    if record.get(MARK) != HEADER:
                        raise ValueError("the first line is not the archive's header")
                    scan.header = record
                    continue
                entry = AuditEntry.from_json(record)
                if entry.workspace_id != workspace_id or entry.time.date() != archive.day:
                    scan.foreign_entries += 1
                scan.entries += 1
        while reader.readinto(bytearray(READ_BYTES)):
            pass
    except (OSError, EOFError, ValueError, KeyError) as exc:
        scan.error = f"{type(exc).__name__}: {exc}"
    finally:
        stored.body.close()
    scan.content_sha256, scan.object_sha256 = content.hexdigest(), reader.digest.hexdigest()
    return scan


def _problems(archive: StoredArchive, scan: _Scan, previous: tuple[StoredArchive, _Scan] | None,
              key: Ed25519PublicKey, workspace_id: str) -> list[tuple[date, str]]:
    day = archive.day
    if scan.error is not None or scan.header is None or scan.trailer is None:
        return [(day, f"unreadable or incomplete archive ({scan.error or 'no header or signature line'}): "
                      "modified or truncated")]
    header, trailer, found = scan.header, scan.trailer, []
    if header.get("day") != day.isoformat() or header.get("workspaceId") != workspace_id:
        return [(day, f"holds the archive of {header.get('workspaceId')} {header.get('day')}: moved or reordered")]
    if scan.foreign_entries:
        found.append((day, f"modified: {scan.foreign_entries} entries of another day or workspace"))
    if trailer.get("contentSha256") != scan.content_sha256 or trailer.get("entries") != scan.entries:
        found.append((day, "modified: its content does not match the SHA-256 and entry count it was signed with"))
    elif not signature_valid(key, scan.content_sha256, str(trailer.get("signature", ""))):
        found.append((day, f"modified: the signature does not verify with the public key {key_id(key)} "
                           f"(signed by key {trailer.get('keyId')})"))
    named = header.get("previousDay")
    if previous is None:
        if named is not None:
            found.append((date.fromisoformat(named), f"deleted: {day} names it as its previous day"))
        return found
    before, before_scan = previous
    if named is None:
        found.append((day, f"the chain is broken: it names no previous day, yet {before.day} is archived"))
    elif named != before.day.isoformat():
        missing = date.fromisoformat(named)
        found.append((missing, f"deleted or reordered: {day} names {named} as its previous day, the archive "
                               f"before it is {before.day}"))
    elif header.get("previousSha256") != before_scan.object_sha256:
        found.append((before.day, f"modified or replaced after {day} was written (its SHA-256 is not the one {day} "
                                  "records)"))
    if before_scan.header and before_scan.header.get("partial"):
        found.append((before.day, f"partial, yet a later day ({day}) is archived: replaced by an older copy"))
    if day - before.day != timedelta(days=1):
        found.append((before.day + timedelta(days=1), f"deleted: no archive between {before.day} and {day}"))
    return found


def verify_archives(storage: ExportStorage, trail: AuditTrail, workspace_id: str, key: Ed25519PublicKey,
                    today: date, since: date | None = None, retention_days: int = 400) -> VerifyReport:
    """Check every archive of ``workspace_id`` from ``since`` on (all when ``None``) with the public ``key``.

    Days before ``today - retention_days`` may be missing. Raises botocore and Redis errors when S3 or Redis
    cannot be read; every problem of an archive itself is in the report.
    """
    report = VerifyReport(workspace_id)
    archives = list_archives(storage, workspace_id)
    cutoff = today - timedelta(days=retention_days)
    previous: tuple[StoredArchive, _Scan] | None = None
    for archive in archives:
        checked = since is None or archive.day >= since
        scan = _scan(storage, archive, workspace_id)  # earlier days too: the chain into `since` needs their hash
        if checked:
            report.days_checked += 1
            report.entries += scan.entries
            if scan.header and scan.header.get("partial"):
                report.partial_days.append(archive.day)
            report.problems += [(d, why) for d, why in _problems(archive, scan, previous, key, workspace_id)
                                if d >= cutoff and (since is None or d >= since or d == archive.day)]
        previous = (archive, scan)
    first, last = trail.archived_days(workspace_id)
    present = sorted(a.day for a in archives)
    ends = []
    if first is not None and (not present or first < present[0]):
        ends.append((first, f"deleted: {first} was archived (Redis records it as the first day), but no archive of "
                            "it is stored"))
    if last is not None and (not present or last > present[-1]):
        gone = present[-1] + timedelta(days=1) if present else first or last
        ends.append((gone, f"deleted: the days from {gone} to {last} were archived (Redis records {last} as the "
                           "last), but no archive of them is stored"))
    report.problems += [(d, why) for d, why in ends if d >= cutoff and (since is None or d >= since)]
    report.problems.sort(key=lambda p: p[0])
    return report
