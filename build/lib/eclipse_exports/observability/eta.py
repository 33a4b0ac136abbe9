"""How long a running export has left: ``etaSeconds`` and ``estimatedCompletionAt`` of its status hash.

An export streams its snapshot's rows (counted before the first batch) into its file, then reads the
stored file back to verify it. :class:`ExportEta` estimates both parts:

- **streaming**: the rows left at the pace seen so far in this job (rows streamed ÷ seconds since
  streaming began); before the first batch, at the median pace of the latest completed exports of the same
  resource and format (:class:`PaceHistory`, in Redis; only exports of at least :data:`MIN_ROWS_FOR_PACE`
  rows count, as a small one's time is mostly latency);
- **after streaming** (upload completion, read-back, verification, presigning): a fixed part plus a time
  per byte of the file (its size projected from the bytes written so far), from the same history, else
  from the read-back speeds measured by ``bench/verification_throughput.py`` (:data:`VERIFY_BYTES_PER_SECOND`):
  reading a file back costs by its size, narrow rows or wide.

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
# Read-back and verification speed per format, bytes of file per second, on the shared 2-core machine
# (docs/benchmarks.md: CSV ~100 MB/s; Parquet and gzip CSV ~350,000 rows/s and JSON ~45,000 rows/s, here
# as bytes at their typical row sizes).
VERIFY_BYTES_PER_SECOND = {"csv": 100e6, "csv.gz": 15e6, "parquet": 10e6, "jsonl": 8e6, "json": 8e6}


@dataclass(frozen=True)
class Pace:
    """How one completed export went: ``rows`` written, ``stream_seconds`` from the start of streaming to the
    last part stored, ``tail_seconds`` from then to ``completed``, ``byte_size`` of its file."""

    rows: int
    stream_seconds: float
    tail_seconds: float
    byte_size: int = 0

    def to_text(self) -> str:
        """``rows stream tail bytes`` (what the history list holds)."""
        return f"{self.rows} {self.stream_seconds:.3f} {self.tail_seconds:.3f} {self.byte_size}"

    @classmethod
    def from_text(cls, text: str | bytes) -> "Pace | None":
        """The pace in ``text``, or ``None`` when it cannot be read."""
        try:
            rows, stream, tail, size = (text.decode() if isinstance(text, bytes) else text).split()
            return cls(int(rows), float(stream), float(tail), int(size))
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
        large = [p for p in history if p.rows >= MIN_ROWS_FOR_PACE and p.stream_seconds > 0 and p.byte_size > 0]
        self.history_rate = statistics.median(p.rows / p.stream_seconds for p in large) if large else None
        self.history_row_bytes = statistics.median(p.byte_size / p.rows for p in large) if large else None
        self.tail_per_byte = statistics.median(max(0.0, p.tail_seconds - TAIL_FIXED_SECONDS) / p.byte_size
                                               for p in large) if large \
            else 1 / VERIFY_BYTES_PER_SECOND.get(fmt, VERIFY_BYTES_PER_SECOND["json"])
        self.started: float | None = None

    def start(self) -> Estimate | None:
        """Streaming begins: the estimate from history, or ``None`` without any."""
        self.started = self.clock()
        return self._from_history()

    def after(self, rows_written: int, bytes_written: int = 0) -> Estimate | None:
        """The estimate once ``rows_written`` rows (``bytes_written`` bytes of file) have been streamed
        (``None`` before :meth:`start`)."""
        if self.started is None:
            return None
        elapsed = self.clock() - self.started
        if rows_written <= 0 or elapsed <= 0:
            return self._from_history()
        file_bytes = bytes_written * self.total / rows_written if bytes_written else \
            (self.history_row_bytes or 0) * self.total
        left = max(0, self.total - rows_written)
        return self._estimate(left * elapsed / rows_written, file_bytes)

    def _from_history(self) -> Estimate | None:
        if self.history_rate is None or self.history_row_bytes is None:
            return None
        return self._estimate(self.total / self.history_rate, self.history_row_bytes * self.total)

    def _estimate(self, stream_seconds_left: float, file_bytes: float) -> Estimate:
        seconds = stream_seconds_left + TAIL_FIXED_SECONDS + self.tail_per_byte * file_bytes
        return Estimate(seconds, self.now() + timedelta(seconds=seconds))
