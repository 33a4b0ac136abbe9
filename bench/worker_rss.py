"""Memory of a Celery run worker group over many runs: the parent's resident set must stay flat.

    .venv/bin/python bench/worker_rss.py [--runs 1000] [--concurrency 2] [--json]

Starts its own Redis, a Dagster home on the run command's instance settings (``instance/dagster.yaml``: SQLite
storage, ``CeleryRunWorkerLauncher``) and one ``eclipse-exports run-workers`` group, then creates ``--runs`` runs of
the floor's trivial asset job (``bench/floor/dagster_floor.py``) and launches each through the launcher, a few at
a time, as the daemon would. Every 10 % it samples the group: the parent's RSS, the children's, and how many
children have been replaced (``worker_max_tasks_per_child``). Prints the samples, the parent's growth from the first
sample after warm-up to the last, and the load average; ``--json`` prints them as one JSON object instead.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

from eclipse_exports.local.services import start_redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLOOR = ROOT / "bench" / "floor"


def group_rss(parent: psutil.Process) -> tuple[float, list[float], set[int]]:
    """(parent RSS MiB, each child's RSS MiB, the children's pids)."""
    children = parent.children()
    return (parent.memory_info().rss / 2**20, [c.memory_info().rss / 2**20 for c in children],
            {c.pid for c in children})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4, help="runs launched and not yet finished at a time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    base = Path(tempfile.mkdtemp(prefix="eclipse-worker-rss-"))
    service = start_redis(log_file=base / "redis.log")
    workers = None
    try:
        home = base / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
        env = {"DAGSTER_HOME": str(home), "ECLIPSE_REDIS_URL": service.url, "ECLIPSE_RUN_QUEUE": "rss-runs"}
        os.environ.update(env)
        with open(base / "workers.log", "wb") as log:
            workers = subprocess.Popen([str(BIN / "eclipse-exports"), "run-workers", "--concurrency",
                                        str(args.concurrency), "--loglevel", "WARNING"], cwd=ROOT,
                                       env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

        from dagster import DagsterInstance, DagsterRunStatus
        from dagster._core.definitions.reconstruct import ReconstructableRepository
        from dagster._core.launcher import LaunchRunContext

        from eclipse_exports.queue.run_workers import RunWorkerRegistry

        registry = RunWorkerRegistry(redis.Redis.from_url(service.url))
        deadline = time.monotonic() + 180
        while not registry.live_nodes("rss-runs"):
            if time.monotonic() > deadline or workers.poll() is not None:
                sys.exit(f"the run workers did not start; see {base / 'workers.log'}")
            time.sleep(0.3)
        sys.path.insert(0, str(FLOOR))
        recon = ReconstructableRepository.for_module("dagster_floor", "defs", working_directory=str(FLOOR))
        job = recon.get_reconstructable_job("trivial_job")
        job_def = job.get_definition()
        instance = DagsterInstance.get()
        parent = psutil.Process(workers.pid)
        samples, seen_children, in_flight = [], set(), []
        started = time.monotonic()
        every = max(1, args.runs // 10)
        for n in range(1, args.runs + 1):
            run = instance.create_run_for_job(job_def=job_def, job_code_origin=job.get_python_origin())
            instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
            in_flight.append(run.run_id)
            while len(in_flight) >= args.in_flight:
                in_flight = [r for r in in_flight if not instance.get_run_by_id(r).is_finished]
                time.sleep(0.05)
            if n % every == 0 or n == 1:
                parent_mib, children_mib, pids = group_rss(parent)
                seen_children |= pids
                samples.append({"runs": n, "parent_mib": round(parent_mib, 1),
                                "children_mib": [round(c, 1) for c in children_mib],
                                "children_started": len(seen_children), "seconds": round(time.monotonic() - started)})
                if not args.json:
                    print(f"  after {n:5d} runs: parent {parent_mib:6.1f} MiB, children "
                          f"{', '.join(f'{c:.0f}' for c in children_mib)} MiB, {len(seen_children)} children so far",
                          flush=True)
        while in_flight:
            in_flight = [r for r in in_flight if not instance.get_run_by_id(r).is_finished]
            time.sleep(0.1)
        failed = sum(1 for r in instance.get_runs() if r.status != DagsterRunStatus.SUCCESS)
        first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
        summary = {"runs": args.runs, "failed": failed, "samples": samples,
                   "parent_growth_mib": round(last["parent_mib"] - first["parent_mib"], 1),
                   "seconds": round(time.monotonic() - started), "load_average": os.getloadavg()}
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"\n{args.runs} runs ({failed} not successful) in {summary['seconds']} s on {args.concurrency} "
                  f"children: the parent grew {summary['parent_growth_mib']:+.1f} MiB from {first['runs']} runs "
                  f"to {last['runs']}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        instance.dispose()
    finally:
        if workers is not None and workers.poll() is None:
            os.killpg(workers.pid, signal.SIGTERM)
            try:
                workers.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(workers.pid, signal.SIGKILL)
        service.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
