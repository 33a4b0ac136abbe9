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


def enqueue_requests(client: redis.Redis, requests: Iterable[ExportRequest], retention_hours: int = 72) -> list[str]:
    """XADD every request and write its ``pending`` status, pipelined. Returns the stream entry ids."""
    store = JobStatusStore(client, retention_hours)
    now = utc_now()
    pipe = client.pipeline(transaction=False)
    count = 0
    for request in requests:
        pipe.xadd(REQUEST_STREAM, {"payload": request.to_payload()})
        store.pending(request, now, pipe)  # skipped when the sensor got there first
        count += 1
    results = pipe.execute()
    # Each request queued two commands: XADD and the create-if-absent status script.
    return [_text(results[i * 2]) for i in range(count)]


def enqueue_request(client: redis.Redis, request: ExportRequest, retention_hours: int = 72) -> str:
    """XADD one request and write its ``pending`` status. Returns the stream entry id."""
    return enqueue_requests(client, [request], retention_hours)[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
