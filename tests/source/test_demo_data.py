"""The demo data reads as real data where the weekly report quotes it: a failed takedown's result says why."""

from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from eclipse_exports.source.demo_data import load_demo_data

SUCCESS_WORDS = ("Removed", "taken down", "suspended")


def test_finished_actions_results_agree_with_their_status(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    load_demo_data(engine, "tiny", as_of=datetime(2026, 12, 7, tzinfo=UTC), generated_workspaces=2)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, result, COUNT(*) FROM actions WHERE status IN ('completed', 'failed') "
                                 "AND result IS NOT NULL GROUP BY status, result")).all()
    engine.dispose()
    failed = {result for status, result, _ in rows if status == "failed"}
    completed = {result for status, result, _ in rows if status == "completed"}
    assert failed and completed
    assert not [r for r in failed if any(word in r for word in SUCCESS_WORDS)], failed
    assert all(any(word in r for word in SUCCESS_WORDS) for r in completed), completed
