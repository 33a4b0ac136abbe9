"""The write-ahead audit trail: one Redis stream per workspace, one entry per event of an export job's life.

Status changes append their entries inside the transition script itself (``queue/transitions.py``), so an
entry and the change it records are one atomic step; the events that are not status changes (a link issued
by ``url`` or ``report-url``, an email sent, a purge, a retry, a refused key, the weekly report's fate) are
appended by :meth:`AuditTrail.append`. Each stream entry has the fields ``eventId``, ``jobId`` (empty when the
event is about no job), ``actor`` (the requesting user id, or ``system:{component}``), ``event`` and
``details`` (a JSON object); its time is the stream entry id's millisecond part (Redis's own clock).

The stream is trimmed only up to the start of a day whose archive is complete (``audit/archive.py``).
"""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import redis

from eclipse_exports.queue.keys import audit_archived_key, audit_stream_key

# Event names, in the order of a job's life.
REQUESTED, REJECTED, RUN_STARTED, REQUEUED = "requested", "rejected", "run_started", "requeued"
COMPLETED, FAILED, LINK_ISSUED, EMAILED = "completed", "failed", "link_issued", "emailed"
EXPIRED, PURGED, RETRIED, KEY_REFUSED = "expired", "purged", "retried", "key_refused"
REPORT_RENDERED, REPORT_DELIVERED, REPORT_SKIPPED = "report_rendered", "report_delivered", "report_skipped"
EVENTS = (REQUESTED, REJECTED, RUN_STARTED, REQUEUED, COMPLETED, FAILED, LINK_ISSUED, EMAILED, EXPIRED, PURGED,
          RETRIED, KEY_REFUSED, REPORT_RENDERED, REPORT_DELIVERED, REPORT_SKIPPED)
READ_PAGE = 1000


def new_event_id() -> str:
    """A fresh event id: 32 hex digits (a UUID4 without dashes)."""
    return uuid.uuid4().hex


def system_actor(component: str) -> str:
    """``system:{component}``: the actor of an event no user caused (``system:run``, ``system:retention``…)."""
    return f"system:{component}"


def entry_millis(entry_id: str) -> int:
    """The millisecond time part of a stream entry id ``{ms}-{seq}``."""
    return int(entry_id.split("-", 1)[0])


def millis(moment: datetime) -> int:
    """``moment`` as epoch milliseconds (a stream id's time part)."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class AuditEntry:
    """One event of the trail.

    ``time`` is UTC (millisecond precision); ``job_id`` ``None`` for an event about no job; ``actor`` a user
    id or ``system:{component}``; ``details`` a JSON object; ``entry_id`` the stream entry it was read from
    (empty once read back from an archive).
    """

    event_id: str
    time: datetime
    workspace_id: str
    job_id: str | None
    actor: str
    event: str
    details: dict[str, Any] = field(default_factory=dict)
    entry_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The interface's shape: ``eventId``, ``time`` (ISO-8601 UTC with milliseconds), ``workspaceId``,
        ``jobId``, ``actor``, ``event``, ``details``."""
        return {"eventId": self.event_id, "time": iso_millis(self.time), "workspaceId": self.workspace_id,
                "jobId": self.job_id, "actor": self.actor, "event": self.event, "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AuditEntry":
        """The inverse of :meth:`to_json`. Raises ``KeyError``/``ValueError`` for a malformed object."""
        return cls(str(data["eventId"]), parse_time(data["time"]), str(data["workspaceId"]),
                   data.get("jobId") or None, str(data["actor"]), str(data["event"]), dict(data.get("details") or {}))


def iso_millis(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset) as an aware UTC datetime; raises ``ValueError``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class AuditTrail:
    """The workspaces' audit streams on one Redis client (with or without ``decode_responses``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def append(self, workspace_id: str, event: str, *, job_id: str | None = None, actor: str = "system",
               details: dict[str, Any] | None = None, pipe: Any = None, event_id: str | None = None) -> str:
        """Append one event to ``workspace_id``'s stream (queued on ``pipe`` when given); returns its event id.

        Raises ``ValueError`` for an unknown ``event`` and Redis errors when Redis cannot take it.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        event_id = event_id or new_event_id()
        target = pipe if pipe is not None else self.client
        target.xadd(audit_stream_key(workspace_id), {
            "eventId": event_id, "jobId": job_id or "", "actor": actor, "event": event,
            "details": json.dumps(details or {}, sort_keys=True, separators=(",", ":"))})
        return event_id

    def entries(self, workspace_id: str, start: datetime | None = None, end: datetime | None = None,
                page: int = READ_PAGE) -> Iterator[AuditEntry]:
        """The stream's entries with ``start`` <= time < ``end`` (either open), oldest first, read ``page``
        at a time (memory stays flat)."""
        key = audit_stream_key(workspace_id)
        low = f"{millis(start)}-0" if start else "-"
        high = f"({millis(end)}-0" if end else "+"
        while True:
            batch = self.client.xrange(key, low, high, count=page)
            for entry_id, fields in batch:
                yield parse_stream_entry(workspace_id, _text(entry_id), fields)
            if len(batch) < page:
                return
            low = "(" + _text(batch[-1][0])

    def first_time(self, workspace_id: str) -> datetime | None:
        """When the stream's oldest entry was written; ``None`` for an empty stream."""
        first = self.client.xrange(audit_stream_key(workspace_id), "-", "+", count=1)
        return datetime.fromtimestamp(entry_millis(_text(first[0][0])) / 1000, UTC) if first else None

    def mark_archived(self, workspace_id: str, day: date) -> None:
        """Record that ``day``'s complete archive was written (the first such day is kept, the last moves on)."""
        key = audit_archived_key(workspace_id)
        self.client.hsetnx(key, "first", day.isoformat())
        if day.isoformat() > (_text(self.client.hget(key, "last") or b"") or ""):
            self.client.hset(key, "last", day.isoformat())

    def archived_days(self, workspace_id: str) -> tuple[date | None, date | None]:
        """The first and last day whose complete archive was written (``None`` when none was)."""
        first, last = self.client.hmget(audit_archived_key(workspace_id), "first", "last")
        return (date.fromisoformat(_text(first)) if first else None, date.fromisoformat(_text(last)) if last else None)

    def trim_before(self, workspace_id: str, moment: datetime) -> int:
        """Remove the entries written before ``moment`` (``XTRIM MINID``, exact); returns how many went."""
        return int(self.client.xtrim(audit_stream_key(workspace_id), minid=f"{millis(moment)}-0",
                                     approximate=False))


def parse_stream_entry(workspace_id: str, entry_id: str, fields: dict) -> AuditEntry:
    """A stream entry as an :class:`AuditEntry`; a ``details`` that is not a JSON object is kept as text."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    try:
        details = json.loads(values.get("details") or "{}")
    except ValueError:
        details = {"text": values.get("details")}
    if not isinstance(details, dict):  # cjson writes an empty Lua table as []
        details = {} if details == [] else {"value": details}
    return AuditEntry(values.get("eventId") or entry_id, datetime.fromtimestamp(entry_millis(entry_id) / 1000, UTC),
                      workspace_id, values.get("jobId") or None, values.get("actor") or "system",
                      values.get("event") or "unknown", details, entry_id)
