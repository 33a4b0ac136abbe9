"""The Prometheus metrics of Eclipse Exports, built with ``prometheus_client`` from what Redis holds.

:class:`ExportsCollector` reads the counters and histograms that status changes write
(``queue/transitions.py``), the refusals the intake counts, and the queue's health
(:mod:`eclipse_exports.observability.health`) on every scrape, so a restart loses nothing and two
metrics servers report one truth. The metrics (docs/observability.md lists them):

- ``eclipse_exports_jobs_total{status,resource,format}`` — jobs that reached ``completed``, ``failed``,
  ``rejected`` or ``expired``;
- ``eclipse_exports_rejections_total{code}`` — refused stream entries by code (``duplicate`` included);
- ``eclipse_exports_queue_entries``, ``eclipse_exports_queue_lag_entries``,
  ``eclipse_exports_oldest_unread_age_seconds``, ``eclipse_exports_dead_letters_last_hour``;
- ``eclipse_exports_runs{state}`` — Dagster runs ``queued`` and ``running`` (as the queue-position sensor
  last saw them; absent when no sensor wrote in the last 3 minutes);
- ``eclipse_exports_jobs_last_hour{status,resource}`` and
  ``eclipse_exports_job_duration_last_hour_seconds{quantile}`` (0.5, 0.95 of XADD → ``completed``);
- histograms ``eclipse_exports_job_duration_seconds{resource,format}`` (XADD → final status) and
  ``eclipse_exports_file_bytes{resource,format}`` (completed files);
- ``eclipse_exports_redis_up`` — 0 when Redis could not be read (then nothing else is reported).
"""

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from eclipse_exports.observability.health import read_queue_health
from eclipse_exports.queue.keys import FILE_BYTES_HISTOGRAM, JOB_COUNTS, JOB_DURATION_HISTOGRAM, REJECTION_COUNTS
from eclipse_exports.queue.transitions import BYTES_BUCKETS, DURATION_BUCKETS

DEFAULT_PORT = 9464


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _histogram(name: str, documentation: str, fields: dict, bounds: tuple[int, ...]) -> HistogramMetricFamily:
    """A histogram family from a hash of ``{resource}|{format}|{le|sum|count}`` fields (per-bucket counts)."""
    family = HistogramMetricFamily(name, documentation, labels=["resource", "format"])
    series: dict[tuple[str, str], dict[str, float]] = {}
    for raw_name, raw_value in fields.items():
        resource, fmt, part = _text(raw_name).rsplit("|", 2) if _text(raw_name).count("|") == 2 else ("", "", "")
        if part:
            series.setdefault((resource, fmt), {})[part] = float(_text(raw_value))
    for (resource, fmt), parts in sorted(series.items()):
        buckets, running = [], 0.0
        for bound in bounds:
            running += parts.get(str(bound), 0.0)
            buckets.append((str(float(bound)), running))
        buckets.append(("+Inf", parts.get("count", running + parts.get("+Inf", 0.0))))
        family.add_metric([resource, fmt], buckets, parts.get("sum", 0.0))
    return family


class ExportsCollector:
    """A ``prometheus_client`` collector over one Redis client (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("eclipse_exports_redis_up", "1 when the figures could be read from Redis")
        try:
            families = self._families()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        pipe = self.client.pipeline(transaction=False)
        for key in (JOB_COUNTS, REJECTION_COUNTS, JOB_DURATION_HISTOGRAM, FILE_BYTES_HISTOGRAM):
            pipe.hgetall(key)
        jobs, rejections, durations, sizes = pipe.execute()
        health = read_queue_health(self.client)

        jobs_total = CounterMetricFamily("eclipse_exports_jobs", "Jobs that reached a final status",
                                         labels=["status", "resource", "format"])
        for name, value in sorted(jobs.items()):
            labels = _text(name).split("|")
            if len(labels) == 3:
                jobs_total.add_metric(labels, int(value))
        refused = CounterMetricFamily("eclipse_exports_rejections", "Refused request stream entries, by code",
                                      labels=["code"])
        for code, value in sorted(rejections.items()):
            refused.add_metric([_text(code)], int(value))

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, value=value)

        families: list[Metric] = [
            jobs_total, refused,
            gauge("eclipse_exports_queue_entries", "Entries on the request stream", health.stream_entries),
            gauge("eclipse_exports_queue_lag_entries", "Request stream entries the request sensor has not read yet",
                  health.lag_entries),
            gauge("eclipse_exports_oldest_unread_age_seconds", "Age of the oldest unread request (0 when none)",
                  health.oldest_unread_age_seconds),
            gauge("eclipse_exports_dead_letters_last_hour", "Dead-letter entries written in the last hour",
                  health.dead_letters_last_hour),
        ]
        if health.runs_queued is not None and health.runs_in_progress is not None:
            runs = GaugeMetricFamily("eclipse_exports_runs", "Dagster runs queued and running", labels=["state"])
            runs.add_metric(["queued"], health.runs_queued)
            runs.add_metric(["running"], health.runs_in_progress)
            families.append(runs)
        last_hour = GaugeMetricFamily("eclipse_exports_jobs_last_hour", "Jobs that reached a final status in the "
                                      "last hour", labels=["status", "resource"])
        for resource, found in sorted(health.by_resource.items()):
            for status in ("completed", "failed", "rejected"):
                last_hour.add_metric([status, resource], getattr(found, status))
        families.append(last_hour)
        quantiles = GaugeMetricFamily("eclipse_exports_job_duration_last_hour_seconds",
                                      "XADD to completed over the last hour", labels=["quantile"])
        for quantile, value in (("0.5", health.overall.p50_seconds), ("0.95", health.overall.p95_seconds)):
            if value is not None:
                quantiles.add_metric([quantile], value)
        families.append(quantiles)
        families.append(_histogram("eclipse_exports_job_duration_seconds", "XADD to final status, per job",
                                   durations, DURATION_BUCKETS))
        families.append(_histogram("eclipse_exports_file_bytes", "Size of completed export files", sizes,
                                   BYTES_BUCKETS))
        return families


def registry_for(client: redis.Redis) -> CollectorRegistry:
    """A registry holding only :class:`ExportsCollector` (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExportsCollector(client))
    return registry


def exposition(client: redis.Redis) -> bytes:
    """The metrics once, in the Prometheus text format."""
    return generate_latest(registry_for(client))
