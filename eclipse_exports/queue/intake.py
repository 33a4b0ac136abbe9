"""Request intake: what the sensor does with new stream entries, without Dagster.

:func:`take_requests` reads the request stream after a cursor (the last entry
id handled; entries are never popped or deleted), and for each entry runs the
the interface's checks in order:

1. the payload is a valid request (else ``invalid_request``, and the entry is
   copied to the dead-letter stream with the reason);
2. its id was not used by an earlier entry (else dead-lettered as a duplicate;
   the first job's status is not touched);
3. the workspace exists, is active, and the user's role allows the resource
   (else ``rejected`` with ``unknown_workspace``, ``workspace_inactive`` or
   ``forbidden``; no dead-letter entry).

Before any of that, the entry itself is claimed for ``owner`` (the Dagster
instance reading the stream) with one atomic ``SET NX`` in Redis, so when two
instances read the same stream (a blue/green deploy) each entry is handled,
and each request launched, by exactly one of them; the other skips it. The
owner that claimed an entry handles it again after a crash (its run key
keeps Dagster from launching it twice).

Accepted requests get status ``queued`` and are returned for the caller to
launch. Reading an entry again (after a failed tick or a restart) is not a
duplicate. The last entry handled is also kept in Redis
(``eclipse:exports:intake:last-entry``), so a deployment with a fresh Dagster
cursor continues from there instead of replaying the whole stream. Nothing
here raises for bad input; a source-database outage stops the batch before
the entry that needed it, so that entry is retried.
"""

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from eclipse_exports.config import redact
from eclipse_exports.models import ID_RE, ErrorCode, ExportRequest, InvalidRequest, JobStatus, utc_now
from eclipse_exports.queue.keys import (
    DEAD_LETTER_STREAM,
    REJECTION_COUNTS,
    REQUEST_STREAM,
    entry_claim_key,
    request_id_claim_key,
)
from eclipse_exports.queue.status import JobStatusStore, request_fields
from eclipse_exports.source.access import check_access

log = logging.getLogger(__name__)

START_CURSOR = "0-0"
INTAKE_FLOOR_KEY = "eclipse:exports:intake:last-entry"
# Move the floor forward only (stream ids compare as "ms-seq" number pairs).
_RAISE_FLOOR = """
local old = redis.call('GET', KEYS[1])
if old then
  local oms, oseq = string.match(old, '(%d+)-(%d+)')
  local nms, nseq = string.match(ARGV[1], '(%d+)-(%d+)')
  if tonumber(nms) < tonumber(oms) or (nms == oms and tonumber(nseq) <= tonumber(oseq)) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
MAX_PARSED_PAYLOAD_BYTES = 1024 * 1024
LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"\s*[,}]')
CLAIM_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_OWNER = "default"
# Fields the project adds to a dead-letter entry; an original field of the same name is kept as "original:{name}".
DEAD_LETTER_FIELDS = ("sourceEntryId", "reason", "errorCode")


@dataclass(frozen=True)
class Refusal:
    """One refused entry: its stream entry id, request id (``None`` when unreadable), ``code`` (an
    ``errorCode`` or ``duplicate``), the readable ``reason``, and, for a valid request, where it was for."""

    entry_id: str
    job_id: str | None
    code: str
    reason: str
    dead_lettered: bool
    request: ExportRequest | None = None

    def describe(self) -> str:
        """``entry 1-0, job j1: forbidden (reason) [dead-lettered]`` — one log line."""
        where = f"entry {self.entry_id}, job {self.job_id or '(no valid id)'}"
        return f"{where}: {self.code} ({self.reason[:200]}){' [dead-lettered]' if self.dead_lettered else ''}"


@dataclass
class IntakeResult:
    """What one pass over the stream did.

    ``accepted``: requests to launch, in stream order, all picked up at
    ``picked_up_at``. ``cursor``: the last
    entry id handled (unchanged when nothing was read). ``rejected`` and
    ``dead_lettered`` count entries refused and copied to the dead-letter
    stream; ``refusals`` names each of them. ``skipped``: entries this owner
    had already finished; ``taken_elsewhere``: entries another owner claimed.
    """

    cursor: str
    accepted: list[ExportRequest] = field(default_factory=list)
    picked_up_at: datetime = field(default_factory=utc_now)
    rejected: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    taken_elsewhere: int = 0
    entries: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        """Count and remember one refused entry."""
        self.refusals.append(refusal)
        self.rejected += 1
        self.dead_lettered += refusal.dead_lettered


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


READABLE_FIELDS = ("workspaceId", "userId", "resourceType", "format")
_READABLE_VALUE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


def readable_fields(payload: bytes) -> dict[str, str]:
    """What an invalid request said about itself, as far as it can be read: ``workspaceId``, ``userId``,
    ``resourceType`` and ``format`` where each is a short plain string (1–64 of ``A-Za-z0-9_.:@-``), so the
    job's status can show "alerts as xlsx from ws_acme" for a request refused for its format. Values
    that do not fit (any other type, control characters, longer) are left out; never raises."""
    if len(payload) > MAX_PARSED_PAYLOAD_BYTES:
        return {}
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: value for name in READABLE_FIELDS
            if isinstance(value := data.get(name), str) and _READABLE_VALUE.fullmatch(value)}


def _claimed_id(payload: bytes | None) -> str | None:
    """The request id of a payload that failed validation, when it has a well-formed one.

    Payloads up to 1 MiB are parsed; larger or too deeply nested ones still
    give their id when it is the first key, as producers serialize it.
    """
    if payload is None:
        return None
    data = None
    if len(payload) <= MAX_PARSED_PAYLOAD_BYTES:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            data = None
    if isinstance(data, dict):
        job_id = data.get("id")
        return job_id if isinstance(job_id, str) and ID_RE.fullmatch(job_id) else None
    leading = LEADING_ID.match(payload[:200])
    return leading.group(1).decode() if leading else None


class _Intake:
    def __init__(self, client: redis.Redis, engine: Engine, store: JobStatusStore, owner: str) -> None:
        self.client, self.engine, self.store, self.owner = client, engine, store, owner
        self.last_dead_lettered: str | None = None  # the entry last copied to the dead letters (never twice)

    def claim_entry(self, entry_id: str) -> bool:
        """Whether this owner handles the entry: it claimed it now, or before (a re-read after a crash)."""
        key = entry_claim_key(entry_id)
        if self.client.set(key, self.owner, nx=True, ex=CLAIM_TTL_SECONDS):
            return True
        return _text(self.client.get(key)) == self.owner

    def dead_letter(self, entry_id: str, fields: dict, reason: str, code: str) -> None:
        """Copy the entry, every original field and value as it was, to the dead-letter stream with the reason."""
        letter: dict[Any, Any] = {"sourceEntryId": entry_id, "reason": reason, "errorCode": code}
        for name, value in fields.items():
            text = _text(name)
            letter[f"original:{text}" if text in DEAD_LETTER_FIELDS else name] = value
        self.client.xadd(DEAD_LETTER_STREAM, letter)
        self.last_dead_lettered = entry_id

    def refuse(self, result: IntakeResult, refusal: Refusal) -> None:
        """Record one refused entry in ``result`` and count it by code (``eclipse_exports_rejections_total``)."""
        self.client.hincrby(REJECTION_COUNTS, refusal.code, 1)
        result.refuse(refusal)

    def claim(self, job_id: str, entry_id: str) -> str:
        """'new' for a first sighting, 'again' when this entry already claimed it, 'duplicate' otherwise."""
        key = request_id_claim_key(job_id)
        if self.client.set(key, entry_id, nx=True, ex=CLAIM_TTL_SECONDS):
            return "new"
        return "again" if _text(self.client.get(key)) == entry_id else "duplicate"


def take_requests(
    client: redis.Redis,
    engine: Engine,
    store: JobStatusStore,
    cursor: str | None,
    max_entries: int = 200,
    block_ms: int = 0,
    time_budget_seconds: float = 20.0,
    owner: str | Callable[[], str] = DEFAULT_OWNER,
    max_total_entries: int | None = None,
    max_accepted: int | None = None,
) -> IntakeResult:
    """Handle stream entries after ``cursor``, read ``max_entries`` at a time; see the module docstring.

    ``block_ms`` > 0 waits up to that long for the first entry when the stream
    has nothing new (a long poll, so a request is seen within moments of its
    XADD). Reads further batches at once while the last one was full, until
    ``max_total_entries`` entries (default: one batch) or ``max_accepted`` accepted requests are handled or
    ``time_budget_seconds`` are spent: a flood of refusals is worked through in one pass, while the runs
    one pass asks for stay bounded. ``owner`` names
    the reader (one id per Dagster instance; a callable is asked only when
    there are entries to claim); entries another owner claimed
    are counted in ``taken_elsewhere`` and left to it. Raises only for Redis
    errors (then nothing after the cursor is lost: the pass is retried).
    """
    started = time.monotonic()
    if not cursor:
        # A new deployment (fresh Dagster cursor) goes on where the last one stopped, not from the start.
        floor = client.get(INTAKE_FLOOR_KEY)
        cursor = _text(floor) if floor else START_CURSOR
    result = IntakeResult(cursor=cursor)
    total = max_total_entries or max_entries
    intake: _Intake | None = None
    block = block_ms or None
    while result.entries < total:
        count = min(max_entries, total - result.entries)
        response = client.xread({REQUEST_STREAM: result.cursor}, count=count, block=block)
        block = None  # only the first read waits
        entries = response[0][1] if response else []
        if not entries:
            break
        if intake is None:
            intake = _Intake(client, engine, store, owner() if callable(owner) else owner)
        stopped = _handle_batch(intake, entries, result, started, time_budget_seconds)
        if (stopped or len(entries) < count or time.monotonic() - started > time_budget_seconds
                or (max_accepted is not None and len(result.accepted) >= max_accepted)):
            break
    if result.entries:
        client.eval(_RAISE_FLOOR, 1, INTAKE_FLOOR_KEY, result.cursor)
    return result


def _handle_batch(intake: "_Intake", entries: list, result: IntakeResult, started: float,
                  time_budget_seconds: float) -> bool:
    """Handle one read's entries in order, moving ``result.cursor``; ``True`` when the pass must stop here (the
    source database is unavailable, or the time budget is spent)."""
    for raw_id, fields in entries:
        entry_id = _text(raw_id)
        try:
            if intake.claim_entry(entry_id):
                _handle_entry(intake, entry_id, fields, result)
            else:
                result.taken_elsewhere += 1
        except SQLAlchemyError as exc:
            log.warning("source database unavailable; entry %s will be retried: %s", entry_id, redact(str(exc)))
            return True
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            # A key of this entry's job holds another type (written by hand or by another program): Redis is fine,
            # this one entry cannot be recorded. Refuse it alone, kept in the dead letters, and go on.
            reason = redact(f"a Redis key of this request's job holds a value of the wrong type ({exc}); the request "
                            "was not taken: remove that key (eclipse:exports:job:<id>) and send the request again")
            if intake.last_dead_lettered != entry_id:
                intake.dead_letter(entry_id, fields, reason, ErrorCode.INVALID_REQUEST.value)
            intake.refuse(result, Refusal(entry_id, None, ErrorCode.INVALID_REQUEST.value, reason, True))
        except redis.RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad entry must never stop the stream
            log.exception("entry %s could not be handled", entry_id)
            reason = redact(f"internal error while handling the entry: {type(exc).__name__}: {exc}")
            intake.dead_letter(entry_id, fields, reason, ErrorCode.INVALID_REQUEST.value)
            intake.refuse(result, Refusal(entry_id, None, ErrorCode.INVALID_REQUEST.value, reason, True))
        result.cursor = entry_id
        result.entries += 1
        if time.monotonic() - started > time_budget_seconds:
            return True
    return False


def _handle_entry(intake: _Intake, entry_id: str, fields: dict, result: IntakeResult) -> None:
    payload = fields.get(b"payload", fields.get("payload"))
    if payload is None:
        reason = "entry has no 'payload' field"
        intake.dead_letter(entry_id, fields, reason, ErrorCode.INVALID_REQUEST.value)
        intake.refuse(result, Refusal(entry_id, None, ErrorCode.INVALID_REQUEST.value, reason, True))
        return
    payload = payload if isinstance(payload, bytes) else str(payload).encode()
    extra = sorted(_text(k) for k in fields if _text(k) != "payload")
    try:
        if extra:
            raise InvalidRequest(f"entry has fields besides 'payload': {', '.join(extra)[:200]}")
        request = ExportRequest.from_payload(payload)
    except InvalidRequest as exc:
        job_id = _claimed_id(payload)
        claim = intake.claim(job_id, entry_id) if job_id else "new"
        if claim == "duplicate":
            reason = f"duplicate request id '{job_id}' (and invalid: {exc})"
            intake.dead_letter(entry_id, fields, reason, "duplicate")
            intake.refuse(result, Refusal(entry_id, job_id, "duplicate", reason, True))
        else:
            intake.dead_letter(entry_id, fields, str(exc), ErrorCode.INVALID_REQUEST.value)
            if job_id:
                intake.store.rejected(job_id, ErrorCode.INVALID_REQUEST, str(exc),
                                      {"id": job_id, **readable_fields(payload)}, at=utc_now(), entry_id=entry_id)
            intake.refuse(result, Refusal(entry_id, job_id, ErrorCode.INVALID_REQUEST.value, str(exc), True))
        return
    claim = intake.claim(request.id, entry_id)
    if claim == "duplicate":
        reason = f"duplicate request id '{request.id}'"
        intake.dead_letter(entry_id, fields, reason, "duplicate")
        intake.refuse(result, Refusal(entry_id, request.id, "duplicate", reason, True))
        return
    if claim == "again" and intake.store.status(request.id) not in (None, JobStatus.PENDING, JobStatus.QUEUED):
        result.skipped += 1
        return
    with intake.engine.connect() as conn:
        denied = check_access(conn, request.workspace_id, request.user_id, request.resource_type)
    if denied is not None:
        intake.store.rejected(request.id, denied.code, denied.message, request_fields(request),
                              at=request.created_at_utc or utc_now(), entry_id=entry_id)
        intake.refuse(result, Refusal(entry_id, request.id, denied.code.value, denied.message, False, request))
        return
    intake.store.queued(request, result.picked_up_at, entry_id)
    result.accepted.append(request)
