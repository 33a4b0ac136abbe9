"""How long a running export has left: ``etaSeconds`` and ``estimatedCompletionAt`` of its status hash.

An export streams its snapshot's rows (counted before the first batch) into its file, then reads the
stored file back to verify it. :class:`ExportEta` estimates both parts:

- **streaming**: the rows left at the pace seen so far in this job (rows streamed ÷ seconds since
  streaming began); before the first batch, at the median pace of the latest completed exports of the same
  resource and format (:class:`PaceHistory`, in Redis; only exports of at least :data:`MIN_ROWS_FOR_PACE`
  rows count, as a small one's time is mostly latency);
- **after streaming** (upload completion, read-back, verification, presigning): a fixed part plus a time
  per row, from the same history, else from the read-back speeds measured by ``bench/verification_throughput.py``
  (:data:`VERIFY_ROWS_PER_SECOND`).

Without any history and before the first batch there is no estimate (``None``). Nothing here raises for
odd input: a pace that cannot be read is skipped.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from eclipse_exports.models import utc_now
from eclipse_exports.queue.keys import export_pace_key

HISTORY_LENGTH = 20
MIN_ROWS_FOR_PACE = 10_000
TAIL_FIXED_SECONDS = 0.5
# Read-back and verification speed per format, rows/s, on the shared 2-core machine (docs/benchmarks.md).
VERIFY_ROWS_PER_SECOND = {"csv": 200_000, "csv.gz": 350_000, "parquet": 350_000, "jsonl": 45_000, "json": 45_000}


@dataclass(frozen=True)
class Pace:
    """How one completed export went: ``rows`` written, ``stream_seconds`` from the start of streaming to the
    last part stored, ``tail_seconds`` from then to ``completed``."""

    rows: int
    stream_seconds: float
    tail_seconds: float

    def to_text(self) -> str:
        """``rows stream tail`` (what the history list holds)."""
        return f"{self.rows} {self.stream_seconds:.3f} {self.tail_seconds:.3f}"

    @classmethod
    def from_text(cls, text: str | bytes) -> "Pace | None":
        """The pace in ``text``, or ``None`` when it cannot be read."""
        try:
            rows, stream, tail = (text.decode() if isinstance(text, bytes) else text).split()
            return cls(int(rows), float(stream), float(tail))
        except ValueError:
            return None


class PaceHistory:
    """The latest :data:`HISTORY_LENGTH` completed exports' pace per resource and format, in Redis lists
    (``eclipse:exports:metrics:pace:{resource}:{format}``, newest first)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, resource: str, fmt: str, pace: Pace) -> None:
        """Add one completed export's pace (one pipelined round trip)."""
        key = export_pace_key(resource, fmt)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, pace.to_text())
        pipe.ltrim(key, 0, HISTORY_LENGTH - 1)
        pipe.execute()

    def recent(self, resource: str, fmt: str) -> list[Pace]:
        """The recorded paces, newest first (unreadable entries skipped)."""
        raw = self.client.lrange(export_pace_key(resource, fmt), 0, HISTORY_LENGTH - 1)
        return [pace for text in raw if (pace := Pace.from_text(text)) is not None]


@dataclass(frozen=True)
class Estimate:
    """Seconds left and the moment the job should complete (UTC)."""

    seconds: float
    completes_at: datetime


class ExportEta:
    """The estimate of one export of ``total_rows`` rows in format ``fmt`` (``csv.gz`` for gzip CSV).

    ``history`` is :meth:`PaceHistory.recent` for the job's resource and format; ``clock`` (monotonic
    seconds) and ``now`` (UTC) are injectable for tests. Call :meth:`start` when streaming begins, then
    :meth:`after` with the rows streamed so far after each batch.
    """

    def __init__(self, total_rows: int, fmt: str, history: list[Pace],
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utc_now) -> None:
        self.total, self.clock, self.now = max(0, total_rows), clock, now
        large = [p for p in history if p.rows >= MIN_ROWS_FOR_PACE and p.stream_seconds > 0]
        self.history_rate = statistics.median(p.rows / p.stream_seconds for p in large) if large else None
        tail_per_row = statistics.median(max(0.0, p.tail_seconds - TAIL_FIXED_SECONDS) / p.rows for p in large) \
            if large else 1 / VERIFY_ROWS_PER_SECOND.get(fmt, VERIFY_ROWS_PER_SECOND["json"])
        self.tail_seconds = TAIL_FIXED_SECONDS + tail_per_row * self.total
        self.started: float | None = None

    def start(self) -> Estimate | None:
        """Streaming begins: the estimate from history, or ``None`` without any."""
        self.started = self.clock()
        if self.history_rate is None:
            return None
        return self._estimate(self.total / self.history_rate)

    def after(self, rows_written: int) -> Estimate | None:
        """The estimate once ``rows_written`` rows have been streamed (``None`` before :meth:`start`)."""
        if self.started is None:
            return None
        elapsed = self.clock() - self.started
        left = max(0, self.total - rows_written)
        if left == 0:
            return self._estimate(0.0)
        if rows_written <= 0 or elapsed <= 0:
            return self._estimate(self.total / self.history_rate) if self.history_rate else None
        return self._estimate(left * elapsed / rows_written)

    def _estimate(self, stream_seconds_left: float) -> Estimate:
        seconds = stream_seconds_left + self.tail_seconds
        return Estimate(seconds, self.now() + timedelta(seconds=seconds))
