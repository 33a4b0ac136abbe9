"""``executive_report_schedule`` and backfills on a real Dagster instance.

The schedule is evaluated for a given Monday (``build_schedule_context``) and
ticked by Dagster's own scheduler code on a persistent instance; its runs and
a backfill launched with ``eclipse-exports report-backfill`` through a real
webserver are then executed by a real ``dagster-daemon``.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, PartitionKeyRange, RunsFilter, SkipReason, build_schedule_context
from dagster._core.test_utils import freeze_time
from sqlalchemy import create_engine, update

from eclipse_exports.cli.reports import _wait_for_backfill
from eclipse_exports.local.services import free_port, wait_for_port
from eclipse_exports.partitions import executive_report_partitions
from eclipse_exports.reports.weekly import ReportWeek
from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.schedules import executive_report_schedule
from eclipse_exports.schedules.executive_report import RANGE_END_TAG, RANGE_START_TAG, report_batches
from eclipse_exports.source.schema import workspaces
from eclipse_exports.storage.client import make_s3_client
from tests.report_dataset import ACTIVE, RECIPIENTS
from tests.run_workers import RunWorkerGroup

ROOT = Path(__file__).resolve().parents[2]
MONDAY = datetime(2026, 10, 26, 6, 0, tzinfo=UTC)
BACKFILL_WEEKS = ("2026-10-12", "2026-10-19", "2026-10-26")


def test_batches_are_consecutive_partitions_of_wanted_workspaces():
    order = ["a", "b", "old", "c", "d", "e", "gone", "f"]
    assert report_batches(order, {"a", "b", "c", "d", "e", "f"}, 2) == [["a", "b"], ["c", "d"], ["e"], ["f"]]
    assert report_batches(order, {"f", "a"}, 20) == [["a"], ["f"]]
    assert report_batches(order, set(), 20) == []


def _partitions_of(request, instance) -> list[str]:
    if request.partition_key:
        return [request.partition_key]
    keys = executive_report_partitions.get_partition_keys_in_range(PartitionKeyRange(
        request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]), dynamic_partitions_store=instance)
    return [str(k) for k in keys]


def _copy_source(engine, folder: Path):
    path = folder / "source.db"
    shutil.copy(engine.url.database, path)
    return create_engine(f"sqlite:///{path}")


def _evaluate(instance, engine, when: datetime = MONDAY, now: datetime | None = None):
    """Evaluate the tick at ``when`` as the daemon would at ``now`` (default: 10 s after it, on time)."""
    context = build_schedule_context(instance=instance, scheduled_execution_time=when,
                                     resources={"source_db": SourceDatabaseResource(url=str(engine.url))})
    with freeze_time(now or when + timedelta(seconds=10)):
        return executive_report_schedule(context)


def test_a_monday_asks_for_last_week_of_each_active_workspace_once(report_sqlite, tmp_path):
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        # Archived and deleted workspaces sit between active ones in the partition order.
        instance.add_dynamic_partitions("workspaces", ["ws_north", "ws_old", "ws_hostile", "ws_gone"])
        requests = _evaluate(instance, report_sqlite)
        again = _evaluate(instance, report_sqlite)
        covered = [key for request in requests for key in _partitions_of(request, instance)]
        assert sorted(covered) == sorted(f"2026-10-19|{ws}" for ws in ACTIVE)  # each active one, once
        assert [r.run_key for r in requests] == [r.run_key for r in again] == [
            "executive_report:2026-10-19:ws_north", "executive_report:2026-10-19:ws_hostile",
            "executive_report:2026-10-19:ws_quiet"]
        assert "ws_quiet" in instance.get_dynamic_partitions("workspaces")  # added by the schedule itself
    assert executive_report_schedule.cron_schedule == "0 6 * * 1"
    assert executive_report_schedule.execution_timezone == "UTC"
    assert executive_report_schedule.default_status.value == "RUNNING"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, report_sqlite, s3_endpoint, redis_url):
    """A Dagster home whose schedule has ticked and whose webserver took a backfill, then a daemon running both."""
    from aiosmtpd.controller import Controller

    from tests.delivery.test_delivery import CollectingHandler

    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
    source = _copy_source(report_sqlite, home)
    bucket = "reports-e2e"
    make_s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    mailbox = CollectingHandler()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    env = {"DAGSTER_HOME": str(home), "ECLIPSE_DATABASE_URL": str(source.url), "ECLIPSE_REDIS_URL": redis_url,
           "ECLIPSE_S3_BUCKET": bucket, "AWS_ENDPOINT_URL": s3_endpoint,
           "ECLIPSE_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "ECLIPSE_RUN_QUEUE": f"runs-{home.name}"}
    instance = DagsterInstance.from_config(str(home))
    # The latest Monday 06:00 UTC: the daemon started afterwards has no later tick to catch up on.
    now = datetime.now(UTC)
    tick = datetime.combine(now.date() - timedelta(days=now.weekday()), datetime.min.time(), UTC) + timedelta(hours=6)
    tick = tick if tick <= now else tick - timedelta(days=7)
    logs = open(home / "processes.log", "wb")

    def start(command: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(Path(sys.executable).parent / command), *args, "-w", str(ROOT / "workspace.yaml")],
                                cwd=ROOT, env={**os.environ, **env}, stdout=logs, stderr=subprocess.STDOUT,
                                start_new_session=True)

    # The webserver runs no schedules, so it starts first. The daemon starts last: after the tick (else it
    # would record the schedule from now and never see the tick) and after the backfill is asked for (its
    # first pass then launches it, instead of 30 s later).
    processes = [start("dagster-webserver", "-h", "127.0.0.1", "-p", str(port))]
    workers = RunWorkerGroup({**os.environ, **env}, home / "workers.log", concurrency=2)
    try:
        subprocess.run([sys.executable, "-m", "tests.schedule_tick", str(home), tick.isoformat()], cwd=ROOT,
                       check=True, env={**os.environ, **env}, timeout=300)
        wait_for_port("127.0.0.1", port, timeout=180, proc=processes[0])
        backfill = subprocess.run(
            [str(Path(sys.executable).parent / "eclipse-exports"), "report-backfill",
             *(arg for week in BACKFILL_WEEKS for arg in ("--week", week)), "--workspace", "ws_north",
             "--workspace", "ws_hostile", "--email", "--dagster-url", f"http://127.0.0.1:{port}"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        processes.append(start("dagster-daemon", "run"))
        workers.start(wait=False)
        yield {"instance": instance, "tick": tick, "bucket": bucket, "s3": make_s3_client(s3_endpoint),
               "mailbox": mailbox, "source": source, "backfill": backfill, "dagster_url": f"http://127.0.0.1:{port}"}
    finally:
        workers.kill()
        for process in processes:  # nothing to keep: stop at once
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        logs.close()
        smtp.stop()
        instance.dispose()


def _wait_for(condition, timeout: float = 240.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.e2e
def test_a_ticked_schedule_launches_nothing_new_when_evaluated_again(deployment):
    instance, tick = deployment["instance"], deployment["tick"]
    week = ReportWeek.last_complete(tick).key
    runs = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "executive_report_schedule"}))
    covered = []
    for run in runs:
        assert run.tags["dagster/run_key"].startswith(f"executive_report:{week}:")
        covered += [str(k) for k in executive_report_partitions.get_partition_keys_in_range(
            PartitionKeyRange(run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]), dynamic_partitions_store=instance)]
    assert sorted(covered) == sorted(f"{week}|{ws}" for ws in ACTIVE)
    assert isinstance(_evaluate(instance, deployment["source"], tick), SkipReason)
    # A workspace activated meanwhile is the only thing a re-evaluated tick still asks for.
    with deployment["source"].begin() as conn:
        conn.execute(update(workspaces).where(workspaces.c.id == "ws_old").values(status="active"))
    try:
        [request] = _evaluate(instance, deployment["source"], tick)
        assert _partitions_of(request, instance) == [f"{week}|ws_old"]
    finally:
        with deployment["source"].begin() as conn:
            conn.execute(update(workspaces).where(workspaces.c.id == "ws_old").values(status="archived"))
    _wait_for(lambda: all(r.status.value == "SUCCESS" for r in instance.get_runs(RunsFilter(run_ids=[
        r.run_id for r in runs]))), what="the scheduled run to succeed")
    materialized = {r.partition_key for r in instance.fetch_materializations(AssetKey("executive_report"),
                                                                             limit=1000).records}
    assert {f"{week}|{ws}" for ws in ACTIVE} <= materialized


@pytest.mark.e2e
def test_a_backfill_of_two_workspaces_by_three_weeks_writes_six_reports(deployment, capsys):
    instance, done = deployment["instance"], deployment["backfill"]
    assert done.returncode == 0, done.stderr  # eclipse-exports report-backfill, through the webserver
    backfill_id = done.stdout.strip()
    wanted = {f"{w}|{ws}" for w in BACKFILL_WEEKS for ws in ("ws_north", "ws_hostile")}
    # What `report-backfill --wait` does once it launched: follow the backfill through the webserver.
    _wait_for_backfill(deployment["dagster_url"], backfill_id, timeout=240, every=0.5)
    shown = capsys.readouterr().err
    assert "] 6/6 reports  COMPLETED_SUCCESS" in shown.splitlines()[-1], shown[-500:]

    def finished():
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        return runs if runs and all(r.status.value in ("SUCCESS", "FAILURE") for r in runs) else None

    runs = _wait_for(finished, what=f"backfill {backfill_id}")
    assert [r.status.value for r in runs] == ["SUCCESS"] * len(runs) and len(runs) == 2  # ranged runs, not 6
    events = [r for r in instance.fetch_materializations(AssetKey("executive_report"), limit=1000).records
              if r.run_id in {run.run_id for run in runs}]
    assert sorted(e.partition_key for e in events) == sorted(wanted)  # each exactly once, nothing else
    keys = {o["Key"] for o in deployment["s3"].list_objects_v2(Bucket=deployment["bucket"]).get("Contents", [])}
    assert {f"workspaces/{k.split('|')[1]}/reports/{k.split('|')[0]}-executive-report.{ext}" for k in wanted
            for ext in ("html", "pdf")} <= keys
    mailed = [m.rcpt_tos[0] for m in deployment["mailbox"].received
              if any(f"week of {w}" in m.message["Subject"] for w in ("12 Oct 2026", "19 Oct 2026", "26 Oct 2026"))]
    assert sorted(mailed) == sorted(3 * (RECIPIENTS["ws_north"] + RECIPIENTS["ws_hostile"]))
