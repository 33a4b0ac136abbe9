"""Reading a workspace's export audit trail back: the complete daily archives in S3, then the Redis stream for
the days no complete archive covers yet (today's partial archive is not read: the stream holds all of it).

What ``eclipse-exports audit`` prints and what an ``export_audit`` export writes. Entries come oldest first,
read archive by archive and page by page, so memory stays flat; an entry seen twice (same ``eventId``) is
given once.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pyarrow as pa

from eclipse_exports.audit.archive import archive_entries, day_start, list_archives, read_header
from eclipse_exports.audit.trail import AuditEntry, AuditTrail
from eclipse_exports.storage.client import ExportStorage


def read_trail(storage: ExportStorage, trail: AuditTrail, workspace_id: str, since: datetime | None = None,
               until: datetime | None = None, job_id: str | None = None) -> Iterator[AuditEntry]:
    """The workspace's entries with ``since`` <= time < ``until`` (either open), of ``job_id`` only when given.

    Raises botocore and Redis errors when S3 or Redis cannot be read, ``ValueError``/``OSError`` for an
    archive that cannot be parsed (``audit verify`` says which).
    """
    complete = [a for a in list_archives(storage, workspace_id)
                if not (read_header(storage, a.key) or {}).get("partial", False)]
    stream_from = day_start(complete[-1].day + timedelta(days=1)) if complete else None
    for archive in complete:
        if (since and day_start(archive.day + timedelta(days=1)) <= since) or (until and day_start(archive.day)
                                                                               >= until):
            continue
        for entry in archive_entries(storage, archive.key):
            if _wanted(entry, since, until, job_id):
                yield entry
    start = max(t for t in (since, stream_from) if t is not None) if (since or stream_from) else None
    seen: set[str] = set()
    for entry in trail.entries(workspace_id, start, until):
        if entry.event_id not in seen and _wanted(entry, since, until, job_id):
            seen.add(entry.event_id)
            yield entry


def _wanted(entry: AuditEntry, since: datetime | None, until: datetime | None, job_id: str | None) -> bool:
    return (since is None or entry.time >= since) and (until is None or entry.time < until) and \
        (job_id is None or entry.job_id == job_id)


def entry_batches(entries: Iterator[AuditEntry], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Entries as Arrow batches of the ``export_audit`` columns (``event_id, time, workspace_id, job_id, actor,
    event, details``; ``details`` as JSON text), ``batch_rows`` at most each."""
    rows: list[dict] = []
    for entry in entries:
        rows.append({"event_id": entry.event_id, "time": entry.time, "workspace_id": entry.workspace_id,
                     "job_id": entry.job_id, "actor": entry.actor, "event": entry.event,
                     "details": json.dumps(entry.details, sort_keys=True, ensure_ascii=False)})
        if len(rows) >= batch_rows:
            yield pa.RecordBatch.from_pylist(rows, schema=schema)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=schema)
