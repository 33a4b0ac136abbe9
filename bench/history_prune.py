"""Pruning Dagster's run history at scale: finished runs deleted per second and peak memory, on PostgreSQL.

    .venv/bin/python bench/history_prune.py [--runs 100000] [--events-per-run 6] [--batch 500]

Starts a throwaway PostgreSQL cluster in a temporary folder (eclipse_exports.local.services.start_postgres),
makes a Dagster instance on it, and inserts ``--runs`` finished runs (each with ``--events-per-run`` event-log
rows) straight into Dagster's run and event-log tables in bulk (the run storage's own schema; adding them one
by one through ``add_run`` would take longer than the pass). Then one history pass
(``retention.history.prune_run_history`` over ``InstanceRunHistory``, exactly what
``dagster_history_cleanup_job`` runs) as of now + 31 days, in a fresh child process, deletes them all. It checks
that no run and no event row remains and prints: runs deleted, seconds, runs per second, the child's peak RSS
(VmHWM) and the load average. No compute logs are staged (the S3 sweep is one listing per pass; see
tests/retention/test_history.py).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from export_throughput import peak_rss_mib

INSERT_CHUNK = 5000


def instance_home(base: Path, url: str) -> Path:
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(json.dumps({"storage": {"postgres": {"postgres_url": url}},
                                                   "telemetry": {"enabled": False}}))
    return home


def fill(home: Path, runs: int, events_per_run: int) -> float:
    """Insert the finished runs and their event rows; returns seconds taken."""
    from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
    from dagster._core.storage.runs.schema import RunsTable
    from dagster._serdes import serialize_value

    started = time.monotonic()
    finished_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    with DagsterInstance.from_config(str(home)) as instance:
        run_engine = instance.run_storage._engine
        event_engine = instance.event_log_storage._engine
        for start in range(0, runs, INSERT_CHUNK):
            run_rows, event_rows = [], []
            for _ in range(min(INSERT_CHUNK, runs - start)):
                run_id = str(uuid.uuid4())
                run = DagsterRun(job_name="alerts_export_job", run_id=run_id, status=DagsterRunStatus.SUCCESS)
                run_rows.append({"run_id": run_id, "pipeline_name": run.job_name, "status": run.status.value,
                                 "run_body": serialize_value(run), "create_timestamp": finished_at,
                                 "update_timestamp": finished_at})
                for n in range(events_per_run):
                    entry = EventLogEntry(error_info=None, level=20, user_message=f"event {n}", run_id=run_id,
                                          timestamp=finished_at.timestamp())
                    event_rows.append({"run_id": run_id, "event": serialize_value(entry), "dagster_event_type": None,
                                       "timestamp": finished_at})
            with run_engine.begin() as conn:
                conn.execute(RunsTable.insert(), run_rows)
            with event_engine.begin() as conn:
                conn.execute(SqlEventLogStorageTable.insert(), event_rows)
    return time.monotonic() - started


def prune_in_child(home: str, batch: int) -> None:
    """The child: one pass as of now + 31 days; prints its summary as JSON."""
    from dagster import DagsterInstance

    from eclipse_exports.resources.run_history import InstanceRunHistory
    from eclipse_exports.retention.history import prune_run_history

    with DagsterInstance.from_config(home) as instance:
        summary = prune_run_history(InstanceRunHistory(instance), datetime.now(UTC) + timedelta(days=31), 30,
                                    batch_size=batch)
        remaining_runs = len(instance.run_storage.get_run_ids())
        with instance.event_log_storage._engine.connect() as conn:
            from sqlalchemy import text

            remaining_events = conn.execute(text("SELECT count(*) FROM event_logs")).scalar()
    print(json.dumps({"runs_deleted": summary.runs_deleted, "seconds": summary.seconds, "errors": summary.errors,
                      "batches": summary.batches, "remaining_runs": remaining_runs,
                      "remaining_events": remaining_events, "peak_rss_mib": peak_rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--events-per-run", type=int, default=6)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        prune_in_child(args.child, args.batch)
        return
    from eclipse_exports.local.services import start_postgres

    with tempfile.TemporaryDirectory(prefix="history-bench-", dir=os.environ.get("BENCH_TMP")) as tmp:
        service = start_postgres(Path(tmp) / "pg")
        try:
            home = instance_home(Path(tmp), service.url)
            fill_seconds = fill(home, args.runs, args.events_per_run)
            print(f"filled {args.runs:,} runs x {args.events_per_run} events in {fill_seconds:.0f}s "
                  f"(load {os.getloadavg()})", flush=True)
            child = subprocess.run([sys.executable, __file__, "--child", str(home), "--batch", str(args.batch)],
                                   capture_output=True, text=True, cwd=Path(__file__).parent)
            if child.returncode != 0:
                raise SystemExit(child.stderr[-3000:])
            result = json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            service.stop()
    ok = result["remaining_runs"] == 0 and result["remaining_events"] == 0 and not result["errors"]
    print(f"pruned {result['runs_deleted']:,} runs in {result['seconds']:.1f}s: "
          f"{result['runs_deleted'] / result['seconds']:,.0f} runs/s, peak RSS {result['peak_rss_mib']:.0f} MiB, "
          f"{result['batches']} batches; remaining runs {result['remaining_runs']}, events "
          f"{result['remaining_events']}; load {os.getloadavg()} {'OK' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
