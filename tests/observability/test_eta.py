"""The ETA of a running export: from its own pace once streaming, from the recent median before."""

from datetime import UTC, datetime, timedelta

from eclipse_exports.exports.summary import eta_text, progress_text
from eclipse_exports.observability.eta import (
    TAIL_FIXED_SECONDS,
    VERIFY_BYTES_PER_SECOND,
    ExportEta,
    Pace,
    PaceHistory,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_estimate_follows_the_pace_seen_so_far_plus_the_read_back_of_the_file():
    clock = Clock()
    history = [Pace(1_000_000, 10.0, 5.5, 100_000_000), Pace(500_000, 5.0, 3.0, 25_000_000),
               Pace(200, 0.01, 0.3, 20_000)]
    eta = ExportEta(1_000_000, "csv", history, clock=clock, now=lambda: NOW)
    # History: 100,000 rows/s, 75 bytes a row, 5e-8 s a byte to read back (medians of the two large jobs).
    before = eta.start()
    assert before is not None and abs(before.seconds - (10.0 + TAIL_FIXED_SECONDS + 75e6 * 7.5e-8)) < 1e-6
    clock.t += 20.0  # this job streams at 12,500 rows/s, 40 bytes a row: its own figures count now
    estimate = eta.after(250_000, 10_000_000)
    assert abs(estimate.seconds - (60.0 + TAIL_FIXED_SECONDS + 40e6 * 7.5e-8)) < 1e-6
    assert estimate.completes_at == NOW + timedelta(seconds=estimate.seconds)
    assert abs(eta.after(1_000_000, 40_000_000).seconds - (TAIL_FIXED_SECONDS + 40e6 * 7.5e-8)) < 1e-6


def test_no_history_means_no_estimate_before_the_first_batch_and_the_format_speed_after():
    clock = Clock()
    eta = ExportEta(100_000, "jsonl", [Pace(5, 1.0, 1.0, 100)], clock=clock, now=lambda: NOW)  # too small to count
    assert eta.after(10) is None  # not started
    assert eta.start() is None
    clock.t += 1.0
    estimate = eta.after(50_000, 4_000_000)
    assert abs(estimate.seconds - (1.0 + TAIL_FIXED_SECONDS + 8_000_000 / VERIFY_BYTES_PER_SECOND["jsonl"])) < 1e-6


def test_pace_history_keeps_the_latest_twenty(redis_client):
    history = PaceHistory(redis_client)
    for n in range(25):
        history.record("alerts", "csv", Pace(n, 1.0, 0.5, 10 * n))
    redis_client.lpush("eclipse:exports:metrics:pace:alerts:csv", "not a pace")
    recent = history.recent("alerts", "csv")
    assert [p.rows for p in recent] == list(range(24, 5, -1)) and history.recent("alerts", "json") == []


def test_eta_and_progress_texts():
    assert [eta_text(s) for s in (0, 11.2, 59.9, 125, 3725)] == \
        ["ETA 0 s", "ETA 12 s", "ETA 1 min", "ETA 2 min 5 s", "ETA 1 h 2 min"]
    assert progress_text(180_000, 500_000, 11.5) == "36% · 180,000/500,000 rows · ETA 12 s"
    assert progress_text(5, 5) == "100% · 5/5 rows"
