"""``report-backfill --wait``'s progress line, from the webserver's GraphQL answer (pure: no services)."""

from eclipse_exports.cli.reports import backfill_line


def _answer(status: str, targeted: int, done: int = 0, failed: int = 0, running: int = 0) -> dict:
    return {"status": status, "numPartitions": targeted, "assetBackfillData": {"assetBackfillStatuses": [
        {"__typename": "AssetPartitionsStatusCounts", "numPartitionsTargeted": targeted,
         "numPartitionsMaterialized": done, "numPartitionsFailed": failed, "numPartitionsInProgress": running}]}}


def test_a_backfill_not_yet_picked_up_says_who_starts_it_and_when():
    line = backfill_line(_answer("REQUESTED", 12))
    assert line.startswith("[" + "-" * 25 + "] 0/12 reports  REQUESTED")
    assert "backfill daemon picks it up within 30 s" in line


def test_a_running_backfill_shows_its_counts_and_no_waiting_note():
    line = backfill_line(_answer("REQUESTED", 12, done=6, failed=1, running=2))
    assert line == "[" + "#" * 14 + "-" * 11 + "] 6/12 reports  1 failed  2 in progress  REQUESTED"
    assert "daemon" not in backfill_line(_answer("COMPLETED_SUCCESS", 12, done=12))
