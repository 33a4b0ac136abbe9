"""The request queue's health, as figures: what ``export_request_queue`` is observed with every minute.

:func:`read_queue_health` reads everything from Redis in a handful of commands, whatever the traffic:

- ``stream_entries``: the request stream's length (``XLEN``);
- ``lag_entries`` and ``oldest_unread_age_seconds``: entries after the last one the request sensor
  handled (``eclipse:exports:intake:last-entry``), counted inside Redis (a script returns only the count),
  and the age of the first of them by its XADD time (0 when none waits);
- ``dead_letters_last_hour``: dead-letter entries of the last hour, counted inside Redis by entry id;
- per resource, jobs ``completed`` / ``failed`` / ``rejected`` in the last hour, and p50/p95 of XADD →
  ``completed`` in seconds, from the sorted set of the last hour's final statuses
  (``queue/transitions.py`` writes it as statuses change: no key is scanned);
- ``runs_queued`` and ``runs_in_progress``: the Dagster run queue, given by the caller (the Dagster layer
  reads it from the instance) or else as the queue-position sensor last wrote it to Redis
  (:func:`read_run_counts`, what the metrics command uses).

The checks' verdicts (:func:`lag_verdict`, :func:`failure_verdict`) are plain values too: a warning past
the limit, an error past twice the limit.
"""

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import redis

from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, RECENT_FINISHES, REQUEST_STREAM, RUN_COUNTS

INTAKE_FLOOR_KEY = "eclipse:exports:intake:last-entry"  # queue/intake.py's (a use case this layer must not import)
COUNT_CHUNK = 10_000
RUN_COUNTS_FRESH_SECONDS = 180
WINDOW_SECONDS = 3600
# Counts the entries of a stream after ARGV[1] (exclusive) up to ARGV[2] of them; returns {count, last id}.
_COUNT_AFTER = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
if #entries == 0 then return {0, ''} end
return {#entries, entries[#entries][1]}
"""


class Severity(StrEnum):
    """A check's verdict: ``ok``, ``warn`` (past the limit) or ``error`` (past twice the limit)."""

    OK = "ok"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: its severity, the figure it judged, the limit and a sentence for the UI."""

    severity: Severity
    value: float
    limit: float
    description: str

    @property
    def passed(self) -> bool:
        return self.severity is Severity.OK


@dataclass(frozen=True)
class ResourceFigures:
    """One resource's last hour: final statuses counted, and XADD → ``completed`` percentiles in seconds
    (``None`` when nothing completed with a known XADD time)."""

    completed: int = 0
    failed: int = 0
    rejected: int = 0
    p50_seconds: float | None = None
    p95_seconds: float | None = None


@dataclass(frozen=True)
class QueueHealth:
    """The queue's figures at one moment (see the module docstring); ``runs_*`` are ``None`` when unknown."""

    stream_entries: int
    lag_entries: int
    oldest_unread_age_seconds: float
    dead_letters_last_hour: int
    by_resource: dict[str, ResourceFigures]
    overall: ResourceFigures
    runs_queued: int | None = None
    runs_in_progress: int | None = None
    observed_at: float = field(default_factory=time.time)

    @property
    def failure_share(self) -> float:
        """Failed ÷ (completed + failed) in the last hour, 0.0 when none finished."""
        finished = self.overall.completed + self.overall.failed
        return self.overall.failed / finished if finished else 0.0

    def metadata(self) -> dict[str, float | int]:
        """Every figure under a flat name, numbers only (what the Dagster UI plots)."""
        figures: dict[str, float | int] = {
            "stream_entries": self.stream_entries, "lag_entries": self.lag_entries,
            "oldest_unread_age_seconds": round(self.oldest_unread_age_seconds, 1),
            "dead_letters_last_hour": self.dead_letters_last_hour,
            "completed_last_hour": self.overall.completed, "failed_last_hour": self.overall.failed,
            "rejected_last_hour": self.overall.rejected,
            "failure_share_last_hour_percent": round(100 * self.failure_share, 1),
        }
        if self.runs_queued is not None:
            figures["runs_queued"] = self.runs_queued
        if self.runs_in_progress is not None:
            figures["runs_in_progress"] = self.runs_in_progress
        for name, value in (("p50", self.overall.p50_seconds), ("p95", self.overall.p95_seconds)):
            if value is not None:
                figures[f"{name}_xadd_to_completed_seconds"] = round(value, 2)
        for resource, found in sorted(self.by_resource.items()):
            figures[f"{resource}_completed_last_hour"] = found.completed
            figures[f"{resource}_failed_last_hour"] = found.failed
        return figures


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` 0–1) of ``values``; ``None`` for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def count_entries(client: redis.Redis, stream: str, start: str, limit: int = 1_000_000) -> int:
    """Entries of ``stream`` from ``start`` on (an ``XRANGE`` start: ``-``, an id, or ``(id`` to exclude it),
    counted inside Redis :data:`COUNT_CHUNK` at a time so nothing but numbers crosses the network; at most
    ``limit``."""
    script = client.register_script(_COUNT_AFTER)
    total = 0
    while total < limit:
        count, last = script(keys=[stream], args=[start, COUNT_CHUNK])
        total += int(count)
        if int(count) < COUNT_CHUNK:
            break
        start = f"({_text(last)}"
    return min(total, limit)


def finishes_by_resource(client: redis.Redis, now: float) -> tuple[dict[str, ResourceFigures], ResourceFigures]:
    """The last hour's final statuses per resource and overall, from ``RECENT_FINISHES``."""
    members = client.zrangebyscore(RECENT_FINISHES, now - WINDOW_SECONDS, "+inf")
    counts: Counter = Counter()
    durations: dict[str, list[float]] = {}
    for member in members:
        parts = _text(member).split("|", 4)
        if len(parts) != 5:
            continue
        status, resource, _fmt, millis, _job = parts
        counts[(resource, status)] += 1
        if status == "completed" and millis:
            durations.setdefault(resource, []).append(int(millis) / 1000)
    resources = {resource for resource, _ in counts}
    by_resource = {r: ResourceFigures(counts[(r, "completed")], counts[(r, "failed")], counts[(r, "rejected")],
                                      percentile(durations.get(r, []), 0.5), percentile(durations.get(r, []), 0.95))
                   for r in resources}
    every = [d for values in durations.values() for d in values]
    overall = ResourceFigures(sum(f.completed for f in by_resource.values()),
                              sum(f.failed for f in by_resource.values()),
                              sum(f.rejected for f in by_resource.values()),
                              percentile(every, 0.5), percentile(every, 0.95))
    return by_resource, overall


def write_run_counts(client: redis.Redis, instance_id: str, queued: int, running: int) -> None:
    """Record one Dagster instance's run queue (for the metrics command, which has no Dagster)."""
    client.hset(RUN_COUNTS, instance_id, json.dumps({"queued": queued, "running": running, "at": time.time()}))


def read_run_counts(client: redis.Redis, now: float | None = None) -> tuple[int, int] | None:
    """Queued and running runs summed over the instances that wrote in the last 3 minutes; ``None`` if none did."""
    now = time.time() if now is None else now
    fresh = []
    for raw in client.hvals(RUN_COUNTS):
        try:
            counts = json.loads(raw)
            if now - float(counts["at"]) <= RUN_COUNTS_FRESH_SECONDS:
                fresh.append((int(counts["queued"]), int(counts["running"])))
        except (ValueError, KeyError, TypeError):
            continue
    if not fresh:
        return None
    return sum(q for q, _ in fresh), sum(r for _, r in fresh)


def read_queue_health(client: redis.Redis, runs: tuple[int, int] | None = None,
                      now: float | None = None) -> QueueHealth:
    """The queue's figures now (see the module docstring). ``runs`` is (queued, in progress) when the caller
    knows it; else the last counts written to Redis are used. Raises Redis errors."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.xlen(REQUEST_STREAM)
    pipe.get(INTAKE_FLOOR_KEY)
    length, floor = pipe.execute()
    unread = f"({_text(floor)}" if floor else "-"
    lag = count_entries(client, REQUEST_STREAM, unread) if length else 0
    age = 0.0
    if lag:
        first = client.xrange(REQUEST_STREAM, unread, "+", count=1)
        if first:
            age = max(0.0, now - int(_text(first[0][0]).split("-")[0]) / 1000)
    dead = count_entries(client, DEAD_LETTER_STREAM, f"{int((now - WINDOW_SECONDS) * 1000)}-0")
    by_resource, overall = finishes_by_resource(client, now)
    if runs is None:
        runs = read_run_counts(client, now)
    return QueueHealth(stream_entries=int(length), lag_entries=lag, oldest_unread_age_seconds=age,
                       dead_letters_last_hour=dead, by_resource=by_resource, overall=overall,
                       runs_queued=runs[0] if runs else None, runs_in_progress=runs[1] if runs else None,
                       observed_at=now)


def lag_verdict(health: QueueHealth, limit_seconds: float) -> Verdict:
    """The oldest unread request's age against ``limit_seconds`` (``ECLIPSE_QUEUE_LAG_ALERT_SECONDS``)."""
    age = health.oldest_unread_age_seconds
    severity = Severity.ERROR if age > 2 * limit_seconds else Severity.WARN if age > limit_seconds else Severity.OK
    what = (f"the oldest unread request has waited {age:.0f} s ({health.lag_entries} unread); the limit is "
            f"{limit_seconds:.0f} s" if health.lag_entries
            else f"no request waits to be read (limit {limit_seconds:.0f} s)")
    return Verdict(severity, round(age, 1), limit_seconds, what)


def failure_verdict(health: QueueHealth, limit_percent: float) -> Verdict:
    """Failed jobs' share of those finished in the last hour against ``limit_percent``."""
    share = 100 * health.failure_share
    severity = Severity.ERROR if share > 2 * limit_percent else Severity.WARN if share > limit_percent \
        else Severity.OK
    finished = health.overall.completed + health.overall.failed
    return Verdict(severity, round(share, 1), limit_percent,
                   f"{health.overall.failed} of {finished} jobs finished in the last hour failed ({share:.1f} %); "
                   f"the limit is {limit_percent:g} %")
