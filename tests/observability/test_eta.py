"""The ETA of a running export: from its own pace once streaming, from the recent median before."""

from datetime import UTC, datetime, timedelta

from eclipse_exports.exports.summary import eta_text, progress_text
from eclipse_exports.observability.eta import TAIL_FIXED_SECONDS, ExportEta, Pace, PaceHistory

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_estimate_follows_the_pace_seen_so_far_plus_the_read_back():
    clock = Clock()
    history = [Pace(1_000_000, 10.0, 5.5), Pace(500_000, 5.0, 3.0), Pace(200, 0.01, 0.3)]
    eta = ExportEta(1_000_000, "csv", history, clock=clock, now=lambda: NOW)
    tail = TAIL_FIXED_SECONDS + 1_000_000 * 5.0 / 1_000_000  # median of (5.5-0.5)/1e6 and (3.0-0.5)/5e5
    before = eta.start()
    assert before is not None and abs(before.seconds - (10.0 + tail)) < 1e-6  # median pace: 100,000 rows/s
    clock.t += 20.0  # this job streams at 12,500 rows/s, slower than the history
    estimate = eta.after(250_000)
    assert abs(estimate.seconds - (60.0 + tail)) < 1e-6
    assert estimate.completes_at == NOW + timedelta(seconds=estimate.seconds)
    assert abs(eta.after(1_000_000).seconds - tail) < 1e-6


def test_no_history_means_no_estimate_before_the_first_batch_and_the_format_speed_after():
    clock = Clock()
    eta = ExportEta(100_000, "jsonl", [], clock=clock, now=lambda: NOW)
    assert eta.after(10) is None  # not started
    assert eta.start() is None
    clock.t += 1.0
    assert abs(eta.after(50_000).seconds - (1.0 + TAIL_FIXED_SECONDS + 100_000 / 45_000)) < 1e-6


def test_pace_history_keeps_the_latest_twenty(redis_client):
    history = PaceHistory(redis_client)
    for n in range(25):
        history.record("alerts", "csv", Pace(n, 1.0, 0.5))
    redis_client.lpush("eclipse:exports:metrics:pace:alerts:csv", "not a pace")
    recent = history.recent("alerts", "csv")
    assert [p.rows for p in recent] == list(range(24, 5, -1)) and history.recent("alerts", "json") == []


def test_eta_and_progress_texts():
    assert [eta_text(s) for s in (0, 11.2, 59.9, 125, 3725)] == \
        ["ETA 0 s", "ETA 12 s", "ETA 1 min", "ETA 2 min 5 s", "ETA 1 h 2 min"]
    assert progress_text(180_000, 500_000, 11.5) == "36% · 180,000/500,000 rows · ETA 12 s"
    assert progress_text(5, 5) == "100% · 5/5 rows"
