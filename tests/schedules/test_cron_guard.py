"""A cron change never launches a catch-up run (Dagster issue 13329), on both schedules; a missed tick still runs.

In-process: the schedules evaluated with ``build_schedule_context`` on a real
instance, Dagster's clock frozen at the evaluation moment. Then the issue's
own reproduction with Dagster's scheduler code (tests/schedule_tick.py, one
process per cron, as a restart with a changed ``ECLIPSE_CLEANUP_CRON`` is).
"""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunRequest, RunsFilter, SkipReason, build_schedule_context
from dagster._core.test_utils import create_run_for_test, freeze_time

from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.schedules import executive_report_schedule, export_cleanup_schedule
from eclipse_exports.schedules.cron_guard import catch_up_skip, checked_cron

ROOT = Path(__file__).resolve().parents[2]
NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MONDAY_6 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def _launched(instance: DagsterInstance, schedule: str, at: datetime) -> None:
    """A finished run as the schedule's tick at ``at`` leaves it."""
    run = create_run_for_test(instance, job_name="export_cleanup_job", tags={
        "dagster/schedule_name": schedule, ".dagster/scheduled_execution_time": at.isoformat()})
    instance.report_run_canceled(run)


def _cleanup_tick(instance: DagsterInstance, scheduled: datetime, now: datetime):
    with freeze_time(now):
        return export_cleanup_schedule(build_schedule_context(instance=instance, scheduled_execution_time=scheduled))


def test_a_changed_cleanup_cron_does_not_fire_a_made_up_tick(tmp_path, monkeypatch):
    monkeypatch.setenv("ECLIPSE_CLEANUP_CRON", "*/5 * * * *")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        _launched(instance, "export_cleanup_schedule", NOON)  # the last hourly tick
        # Restarted at 12:12 with */5: Dagster evaluates 12:10 at once; nothing was due then.
        skipped = _cleanup_tick(instance, NOON + timedelta(minutes=10), NOON + timedelta(minutes=12))
        assert isinstance(skipped, SkipReason) and "catch-up tick skipped" in skipped.skip_message
        assert "Dagster issue 13329" in skipped.skip_message
        # The next tick of the new cron runs, on time.
        on_time = NOON + timedelta(minutes=15)
        assert isinstance(_cleanup_tick(instance, on_time, on_time + timedelta(seconds=5)), RunRequest)


def test_a_tick_missed_while_the_daemon_was_down_still_runs(tmp_path):
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        _launched(instance, "export_cleanup_schedule", NOON - timedelta(hours=1))
        # Hourly; the daemon came back at 12:20: the 12:00 tick is the cron's next after 11:00, so it runs.
        assert isinstance(_cleanup_tick(instance, NOON, NOON + timedelta(minutes=20)), RunRequest)
        # Down for two hours: only the latest tick is evaluated, and it is not the next after the last one.
        assert isinstance(catch_up_skip(instance, "export_cleanup_schedule", "0 * * * *", NOON + timedelta(hours=2),
                                        NOON + timedelta(hours=2, minutes=20)), SkipReason)


def _report_tick(instance, engine, scheduled: datetime, now: datetime):
    context = build_schedule_context(instance=instance, scheduled_execution_time=scheduled,
                                     resources={"source_db": SourceDatabaseResource(url=str(engine.url))})
    with freeze_time(now):
        return executive_report_schedule(context)


def test_a_changed_report_cron_never_launches_a_week_again(report_sqlite, tmp_path, monkeypatch):
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        requests = _report_tick(instance, report_sqlite, MONDAY_6, MONDAY_6 + timedelta(seconds=20))
        assert {r.tags["eclipse/report_week"] for r in requests} == {"2026-11-23"}
        for request in requests:  # the runs the tick launched, as the daemon records them
            create_run_for_test(instance, job_name="executive_report_job", tags={
                **request.tags, "dagster/run_key": request.run_key,
                "dagster/schedule_name": "executive_report_schedule",
                ".dagster/scheduled_execution_time": MONDAY_6.isoformat(),
                **({"dagster/partition": request.partition_key} if request.partition_key else {})})
        monkeypatch.setenv("ECLIPSE_REPORT_CRON", "0 7 * * 1")
        # Restarted at 09:00 with 07:00: Dagster evaluates 07:00 of the same Monday at once; a catch-up, skipped.
        late = _report_tick(instance, report_sqlite, MONDAY_6 + timedelta(hours=1), MONDAY_6 + timedelta(hours=3))
        assert isinstance(late, SkipReason)
        # Even evaluated on time, a tick for a week this schedule already launched launches nothing.
        on_time = _report_tick(instance, report_sqlite, MONDAY_6 + timedelta(hours=1),
                               MONDAY_6 + timedelta(hours=1, seconds=5))
        assert isinstance(on_time, SkipReason) and "already has a run of this schedule for week 2026-11-23" in \
            on_time.skip_message
        # The next Monday's tick runs for its own week.
        nxt = _report_tick(instance, report_sqlite, MONDAY_6 + timedelta(days=7, hours=1),
                           MONDAY_6 + timedelta(days=7, hours=1, seconds=5))
        assert {r.tags["eclipse/report_week"] for r in nxt} == {"2026-11-30"}


def _scheduler(home: Path, moment: datetime, cron: str, database_url: str) -> None:
    env = {**os.environ, "ECLIPSE_CLEANUP_CRON": cron, "ECLIPSE_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "tests.schedule_tick", str(home), moment.isoformat()], cwd=ROOT, env=env,
                   check=True, timeout=300)


def test_dagster_scheduler_restarted_with_a_new_cron_launches_nothing(tmp_path, report_sqlite):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "instance" / "dagster.yaml").read_text())
    _scheduler(home, NOON, "0 * * * *", str(report_sqlite.url))
    with DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "export_cleanup_schedule"}))
        instance.report_run_canceled(run)
    # Restarted at 12:12 with */5: Dagster's scheduler evaluates the made-up 12:10 tick at once.
    _scheduler(home, NOON + timedelta(minutes=12, seconds=30), "*/5 * * * *", str(report_sqlite.url))
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "export_cleanup_schedule"}))
        assert [r.tags[".dagster/scheduled_execution_time"] for r in runs] == [NOON.isoformat()]


def test_a_bad_cron_setting_is_a_clear_error():
    assert checked_cron("ECLIPSE_REPORT_CRON", "0 7 * * 1") == "0 7 * * 1"
    with pytest.raises(ValueError, match="ECLIPSE_REPORT_CRON='every monday' is not a cron string"):
        checked_cron("ECLIPSE_REPORT_CRON", "every monday")
