"""The producer side of the request stream: what the Eclipse web app does, in Python.

Each request is one ``XADD`` of a ``payload`` field holding the request's
JSON, plus a ``pending`` status hash. Bulk enqueues go through one pipeline
(one round trip).
"""

from collections.abc import Iterable

import redis

from eclipse_exports.models import ExportRequest, utc_now
from eclipse_exports.queue.keys import REQUEST_STREAM
from eclipse_exports.queue.status import JobStatusStore


def enqueue_requests(client: redis.Redis, requests: Iterable[ExportRequest], retention_hours: int = 72,
                     extra: dict[str, str] | None = None) -> list[str]:
    """XADD every request and write its ``pending`` status (with ``extra`` fields), pipelined.
    Returns the stream entry ids."""
    store = JobStatusStore(client, retention_hours)
    now = utc_now()
    pipe = client.pipeline(transaction=False)
    starts = []
    for request in requests:
        starts.append(len(pipe))
        pipe.xadd(REQUEST_STREAM, {"payload": request.to_payload()})
        store.pending(request, now, pipe, extra)  # skipped when the sensor got there first
    results = pipe.execute()
    return [_text(results[i]) for i in starts]


def enqueue_request(client: redis.Redis, request: ExportRequest, retention_hours: int = 72,
                    extra: dict[str, str] | None = None) -> str:
    """XADD one request and write its ``pending`` status. Returns the stream entry id."""
    return enqueue_requests(client, [request], retention_hours, extra)[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
