"""The dead-letter stream ``eclipse:exports:dead-letter``, read back (what ``eclipse-exports dead-letters`` shows).

Each entry holds the refused stream entry's own fields, byte for byte (``payload`` and any other; a field
whose name clashes with the project's is kept as ``original:{name}``), plus ``sourceEntryId`` (the entry's id
in ``eclipse:exports:requests``), ``reason`` and ``errorCode`` (``invalid_request`` or ``duplicate``).
"""

import json
from dataclasses import dataclass, field

import redis

from eclipse_exports.queue.keys import DEAD_LETTER_STREAM

OWN_FIELDS = ("sourceEntryId", "reason", "errorCode")


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter entry: its own id, the source entry id, code, reason, the request id when the payload
    names one, and the original fields as text (undecodable bytes replaced)."""

    entry_id: str
    source_entry_id: str
    error_code: str
    reason: str
    job_id: str | None
    original: dict[str, str] = field(default_factory=dict)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _job_id(payload: str | None) -> str | None:
    try:
        data = json.loads(payload) if payload and len(payload) <= 1024 * 1024 else None
    except (ValueError, RecursionError):
        return None
    job_id = data.get("id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) else None


def recent_dead_letters(client: redis.Redis, limit: int = 20) -> list[DeadLetter]:
    """The newest ``limit`` dead-letter entries, newest first (one ``XREVRANGE``). Raises Redis errors."""
    letters = []
    for raw_id, raw_fields in client.xrevrange(DEAD_LETTER_STREAM, count=limit):
        fields = {_text(k): _text(v) for k, v in raw_fields.items()}
        original = {k: v for k, v in fields.items() if k not in OWN_FIELDS}
        letters.append(DeadLetter(_text(raw_id), fields.get("sourceEntryId", "?"), fields.get("errorCode", "?"),
                                  fields.get("reason", ""), _job_id(original.get("payload")), original))
    return letters
