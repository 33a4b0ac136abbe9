"""What one export run costs next to Dagster's floor: CPU per run worker, burst drain time, latency, import time.

    .venv/bin/python bench/run_cost.py [--repeats 2] [--burst 20] [--sequential 8] [--instance dev|deploy]
                                       [--source sqlite|postgresql] [--launcher celery|default|both]

Runs the same requests twice per repeat, on the same instance settings,
product and floor alternating:

- **product**: the Eclipse Exports code location (``eclipse_exports.definitions``);
  each request is a small export (one week of a demo workspace's critical alerts, CSV)
  XADDed raw on the request stream, through the real path (sensor → queued run
  → run worker → S3 → status hash);
- **floor**: ``bench/floor/dagster_floor.py``, one trivial asset launched by a
  sensor of the same shape (long poll of a Redis stream, one run per entry), on
  Dagster's default launcher (a fresh process per run).

``--launcher`` says how the product's runs are launched: ``celery`` (the warm run
workers of ``CeleryRunWorkerLauncher``, one ``eclipse-exports run-workers`` group of
4 started beside the daemon), ``default`` (``WatchedRunLauncher``, a fresh process per
run, as the floor), or ``both`` (each, and the floor, side by side in one run).
For Celery the run worker CPU-s per run is the worker group's CPU (parent and
children, psutil) over the measured runs divided by their number.

Each phase starts its own ``dagster-daemon run`` (which starts the code
location's gRPC server, as ``dagster dev`` does) on a fresh ``DAGSTER_HOME``
holding ``instance/dagster.yaml`` (``--instance dev``, the run command's
settings: SQLite storage, 4 concurrent runs, threaded dequeue) or
``deploy/dagster.yaml`` (``--instance deploy``: PostgreSQL storage, S3 compute
logs). One warm-up request, then ``--sequential`` requests one after another
(latency), then a burst of ``--burst`` at once (drain time).

Figures:

- **run worker CPU-s**: every run worker writes its own ``getrusage`` at exit
  (``bench/probe/sitecustomize.py``, put on ``PYTHONPATH`` here only); the
  worker is matched to its run through the pid of the run's "Started process"
  event. Warm-up runs are left out.
- **burst drained**: from the XADD of the burst until the last of its runs ended
  (``RunRecord.end_time``).
- **median latency** of the sequential requests: product XADD → status
  ``completed`` (the web app's view), and for both launch (run created) → run
  success.
- **daemon and code server CPU-s per run** (psutil, over the measured runs; the
  code server's includes its sensor evaluations), and that of the bench's Redis,
  S3 server (moto, a Python process) and PostgreSQL, which share the machine here
  but not in production.
- **import**: ``python -X importtime -c "import <location>"`` (cumulative) and
  the CPU-s of a process doing only that import; the packages only the product
  imports, heaviest first.

Services are started here on free ports (Redis, moto's S3 server, PostgreSQL
for ``--instance deploy``) and stopped at the end. On a shared machine figures
are noisy: repeats are reported with their spread (min–max) and the load
average is printed; rerun on a quiet machine for final figures.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import redis
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eclipse_exports.local.services import Service, free_port, start_postgres, start_redis, wait_for_port
from eclipse_exports.queue.run_workers import RunWorkerRegistry
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import make_s3_client

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
REQUEST_STREAM = "eclipse:exports:requests"
FLOOR_STREAM = "bench:floor:requests"
BUCKET, LOGS_BUCKET = "bench-exports", "bench-dagster-logs"
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]



@dataclass
class Location:
    """A code location under test, the launcher its runs use, and how a request for it is sent and found."""

    name: str
    module: str
    working_directory: Path
    tag: str
    launcher: str = "default"

    @property
    def product(self) -> bool:
        return self.module == "eclipse_exports.definitions"

    def workspace_yaml(self) -> str:
        return (f"load_from:\n  - python_module:\n      module_name: {self.module}\n"
                f"      working_directory: {self.working_directory}\n      location_name: {self.name}\n")

    def send(self, client: redis.Redis, ids: list[str]) -> float:
        """XADD one request per id in one pipeline; returns the wall-clock time they were sent."""
        pipe = client.pipeline(transaction=False)
        for request_id in ids:
            if self.product:
                pipe.xadd(REQUEST_STREAM, {"payload": product_payload(request_id)})
            else:
                pipe.xadd(FLOOR_STREAM, {"id": request_id})
        sent = time.time()
        pipe.execute()
        return sent


PRODUCT = Location("product", "eclipse_exports.definitions", ROOT, "eclipse/job_id")
PRODUCT_CELERY = Location("product-celery", "eclipse_exports.definitions", ROOT, "eclipse/job_id", "celery")
DEFAULT_LAUNCHER = ("run_launcher:\n  module: eclipse_exports.launchers.watched\n  class: WatchedRunLauncher\n")


def instance_text(instance_yaml: Path, launcher: str) -> str:
    """The instance file with the run launcher ``launcher`` asks for (the file's own is the Celery one)."""
    text = instance_yaml.read_text()
    if launcher == "celery":
        return text
    start = text.index("run_launcher:")
    end = text.index("\n\n", start)
    return text[:start] + DEFAULT_LAUNCHER + text[end + 1:]
FLOOR = Location("floor", "dagster_floor", BENCH / "floor", "bench/request_id")


# The burst is spread over the three demo workspaces: the run queue allows 2 runs per workspace, 4 in all, and
# the floor's runs carry no workspace tag, so a one-workspace burst would compare 2 slots with the floor's 4.
MEMBERS = (("ws_acme", "usr_acme_analyst"), ("ws_globex", "usr_globex_admin"), ("ws_initech", "usr_initech_owner"))


def product_payload(request_id: str) -> str:
    """A small export as bench/latency.py sends it (a week of critical alerts as CSV), from one of the demo
    workspaces chosen by the request id."""
    workspace, user = MEMBERS[zlib.crc32(request_id.encode()) % len(MEMBERS)]
    week_ago = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT00:00:00Z")
    return json.dumps({"id": request_id, "workspaceId": workspace, "userId": user,
                       "resourceType": "alerts", "format": "csv",
                       "filters": {"severity": ["critical"], "from": week_ago}})


@dataclass
class PhaseResult:
    """Figures of one location in one repeat."""

    location: str
    worker_cpu: list[float] = field(default_factory=list)
    worker_rss_mib: list[float] = field(default_factory=list)
    launch_to_success: list[float] = field(default_factory=list)
    xadd_to_completed: list[float] = field(default_factory=list)
    burst_drain: float = float("nan")
    burst_failed: int = 0
    daemon_cpu_per_run: float = float("nan")
    code_server_cpu_per_run: float = float("nan")
    backing_cpu_per_run: float = float("nan")
    load_average: float = float("nan")


class Deployment:
    """One ``dagster-daemon run`` (with its code server) on a fresh DAGSTER_HOME, for one phase."""

    def __init__(self, location: Location, base: Path, env: dict[str, str], instance_yaml: Path) -> None:
        self.location = location
        self.home = base / "dagster_home"
        self.rusage_dir = base / "rusage"
        self.home.mkdir(parents=True)
        self.rusage_dir.mkdir()
        (self.home / "dagster.yaml").write_text(instance_text(instance_yaml, location.launcher))
        workspace = base / "workspace.yaml"
        workspace.write_text(location.workspace_yaml())
        self.env = {**env, "DAGSTER_HOME": str(self.home), "ECLIPSE_BENCH_RUSAGE_DIR": str(self.rusage_dir),
                    "ECLIPSE_RUN_QUEUE": f"bench-{base.name}",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH / "probe"), env.get("PYTHONPATH")]))}
        self.workers: subprocess.Popen | None = None
        if location.launcher == "celery":
            self.workers_log = open(base / "run-workers.log", "wb")
            self.workers = subprocess.Popen([str(BIN / "eclipse-exports"), "run-workers", "--concurrency", "4",
                                             "--name", f"bench-{base.name}@bench"], cwd=ROOT, env=self.env,
                                            stdout=self.workers_log, stderr=subprocess.STDOUT, start_new_session=True)
            registry = RunWorkerRegistry(redis.Redis.from_url(env["ECLIPSE_REDIS_URL"]))
            deadline = time.monotonic() + 180
            while not registry.live_nodes(self.env["ECLIPSE_RUN_QUEUE"]):
                if time.monotonic() > deadline or self.workers.poll() is not None:
                    sys.exit(f"the run workers did not come up; see {base / 'run-workers.log'}")
                time.sleep(0.3)
        self.log = open(base / "daemon.log", "wb")
        self.process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=base,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        # The instance here reads the same dagster.yaml, and its variables, as the daemon.
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        self.instance = DagsterInstance.from_config(str(self.home))

    def workers_cpu(self) -> float:
        """CPU-s so far of the Celery run worker group (parent and children); 0 without one."""
        return _cpu_seconds(_process_tree(self.workers.pid)) if self.workers is not None else 0.0

    def workers_rss_mib(self) -> list[float]:
        """Resident MiB of the worker group's parent, then each child."""
        return [p.memory_info().rss / 2**20 for p in _process_tree(self.workers.pid)] if self.workers else []

    def stop(self) -> None:
        if self.workers is not None:
            os.killpg(self.workers.pid, signal.SIGTERM)
            try:
                self.workers.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.workers.pid, signal.SIGKILL)
            self.workers_log.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.instance.dispose()
        self.log.close()

    def service_cpu(self) -> tuple[float, float]:
        """CPU-s so far of (the daemon, its long-lived children: the code server), run workers excluded."""
        tree = _process_tree(self.process.pid)
        return _cpu_seconds(tree[:1]), _cpu_seconds(p for p in tree[1:] if not _is_run_worker(p))

    def ended_runs(self, ids: list[str]) -> list:
        """Run records of the given requests that have ended."""
        return list(self.instance.get_run_records(RunsFilter(tags={self.location.tag: ids}, statuses=ENDED)))

    def wait_runs(self, ids: list[str], timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.ended_runs(ids)
            if len(records) >= len(ids):
                return records
            if self.process.poll() is not None:
                sys.exit(f"the {self.location.name} daemon exited; see {self.home.parent / 'daemon.log'}")
            time.sleep(0.25)
        sys.exit(f"{self.location.name}: {len(self.ended_runs(ids))} of {len(ids)} runs ended in {timeout:.0f}s; "
                 f"see {self.home.parent / 'daemon.log'}")

    def worker_pid(self, run_id: str) -> int | None:
        for event in self.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = event.dagster_event.event_specific_data if event.dagster_event else None
            pid = data.metadata.get("pid") if data is not None and data.metadata else None
            if pid is not None:
                return int(pid.value)
        return None

    def worker_usage(self, records: list, timeout: float = 30.0) -> list[dict]:
        """The probe records of these runs' workers (waiting for the workers to exit and write them)."""
        pids = {self.worker_pid(r.dagster_run.run_id) for r in records} - {None}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {int(p.stem.split("-")[1]): p for p in self.rusage_dir.glob("worker-*.json")}
            if pids <= found.keys():
                return [json.loads(found[pid].read_text()) for pid in pids]
            time.sleep(0.2)
        print(f"  warning: {self.location.name}: no CPU record for {len(pids - found.keys())} run workers",
              file=sys.stderr)
        return [json.loads(found[pid].read_text()) for pid in pids & found.keys()]


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _is_run_worker(proc: psutil.Process) -> bool:
    try:
        return "--multiprocessing-fork" in proc.cmdline()
    except psutil.NoSuchProcess:
        return True


def _cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def process_tree_cpu(pids: list[int]) -> float:
    """CPU-s so far of these processes and all their children (the bench's Redis, S3 server, PostgreSQL)."""
    return sum(_cpu_seconds(_process_tree(pid)) for pid in pids)


def product_completed(client: redis.Redis, ids: list[str], sent: dict[str, float], timeout: float) -> dict[str, float]:
    """Poll the status hashes (every 50 ms) until every job is done; XADD → completed per completed job."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        pipe = client.pipeline(transaction=False)
        for job in ids:
            pipe.hget(f"eclipse:exports:job:{job}", "status")
        now = time.time()
        for job, status in zip(ids, pipe.execute(), strict=True):
            if job not in done and status in (b"completed", b"failed", b"rejected"):
                done[job] = now - sent[job] if status == b"completed" else float("nan")
        time.sleep(0.05)
    return done


def run_phase(location: Location, base: Path, env: dict[str, str], instance_yaml: Path, client: redis.Redis,
              sequential: int, burst: int, timeout: float, service_pids: list[int]) -> PhaseResult:
    """Start a deployment of ``location``, send warm-up, sequential and burst requests, collect the figures."""
    result = PhaseResult(location.name)
    deployment = Deployment(location, base, env, instance_yaml)
    try:
        tag = uuid.uuid4().hex[:6]
        warmup = [f"bench-{location.name}-{tag}-warmup"]
        location.send(client, warmup)
        deployment.wait_runs(warmup, timeout=timeout + 120)
        service_start = deployment.service_cpu()
        workers_start = deployment.workers_cpu()
        backing_start = process_tree_cpu(service_pids)
        result.load_average = os.getloadavg()[0]

        measured = []
        for n in range(sequential):
            job = f"bench-{location.name}-{tag}-seq{n}"
            sent = location.send(client, [job])
            if location.product:
                result.xadd_to_completed += product_completed(client, [job], {job: sent}, timeout).values()
            measured += deployment.wait_runs([job], timeout)
            time.sleep(0.3 * (n % 4))  # vary the phase against the daemon's sensor cycle

        result.launch_to_success = [r.end_time - r.create_timestamp.timestamp() for r in measured
                                    if r.dagster_run.status == DagsterRunStatus.SUCCESS]

        if burst:
            jobs = [f"bench-{location.name}-{tag}-burst{n}" for n in range(burst)]
            sent = location.send(client, jobs)
            if location.product:
                product_completed(client, jobs, dict.fromkeys(jobs, sent), timeout * 4)
            records = deployment.wait_runs(jobs, timeout * 4)
            result.burst_drain = max(r.end_time for r in records) - sent
            result.burst_failed = sum(r.dagster_run.status != DagsterRunStatus.SUCCESS for r in records)
            measured += records

        daemon_end, code_server_end = deployment.service_cpu()
        result.daemon_cpu_per_run = (daemon_end - service_start[0]) / max(1, len(measured))
        result.backing_cpu_per_run = (process_tree_cpu(service_pids) - backing_start) / max(1, len(measured))
        result.code_server_cpu_per_run = (code_server_end - service_start[1]) / max(1, len(measured))
        if deployment.workers is not None:
            result.worker_cpu = [(deployment.workers_cpu() - workers_start) / max(1, len(measured))]
            result.worker_rss_mib = deployment.workers_rss_mib()
        else:
            usage = deployment.worker_usage(measured)
            result.worker_cpu = [u["cpu_seconds"] for u in usage]
            result.worker_rss_mib = [u["max_rss_mib"] for u in usage]
    finally:
        deployment.stop()
    return result


def import_cost(location: Location, env: dict[str, str], repeats: int = 3) -> tuple[float, float, dict[str, float]]:
    """(median importtime cumulative s, median CPU-s of a process that only imports, self-time per module)."""
    cumulative, cpu = [], []
    own: dict[str, float] = {}
    probe = (f"import resource, {location.module}; r = resource.getrusage(resource.RUSAGE_SELF); "
             "print(r.ru_utime + r.ru_stime)")
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], cwd=location.working_directory,
                             env=env, capture_output=True, text=True, check=True)
        cpu.append(float(out.stdout.strip()))
        rows = [m.groups() for m in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", out.stderr)]
        top = next(r for r in rows if r[3] == location.module)
        cumulative.append(int(top[1]) / 1e6)
        for self_us, _cum, _indent, module in rows:
            own[module] = min(own.get(module, float("inf")), int(self_us) / 1e6)
    return statistics.median(cumulative), statistics.median(cpu), own


BREAKDOWN_CHILD = """
import json, resource, sys, uuid

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

# What every run worker, the floor's too, has loaded before the code location: Dagster, its storage, execution.
import dagster, dagster._core.execution.api, dagster._grpc.impl, dagster._core.storage.sqlite_storage
import dagster._core.storage.local_compute_log_manager
steps, t = {}, cpu()
import eclipse_exports.definitions
steps["import eclipse_exports.definitions"], t = cpu() - t, cpu()
from eclipse_exports.exports.run import run_export
from eclipse_exports.resources import default_resources
resources = default_resources()
handles = dict(engine=resources["source_db"].get_engine(), storage=resources["storage"].get_storage(),
               status=resources["redis"].get_status_store(), limits=resources["limits"].get_limits())
steps["resources (S3 client, Redis, engine)"], t = cpu() - t, cpu()
from eclipse_exports.models import ExportRequest
for label in ("first export in the process", "a second export (steady state)"):
    request = ExportRequest.from_payload(sys.argv[1].replace("JOB", uuid.uuid4().hex))
    run_export(request, run_id="bench", **handles)
    steps[label], t = cpu() - t, cpu()
print(json.dumps(steps))
"""


def product_breakdown(env: dict[str, str], repeats: int = 3) -> dict[str, float]:
    """Median CPU-s of the product's own steps in a fresh process, after what every run worker loads anyway."""
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", BREAKDOWN_CHILD, product_payload("JOB")], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        for step, seconds in json.loads(out.stdout).items():
            samples[step].append(seconds)
    return {step: statistics.median(values) for step, values in samples.items()}


def heaviest_extra_packages(product: dict[str, float], floor: dict[str, float], top: int = 12) -> list[tuple]:
    """Top-level packages the product imports beyond the floor, by summed self import time."""
    by_package: dict[str, float] = defaultdict(float)
    for module, seconds in product.items():
        if module not in floor:
            by_package[module.split(".")[0]] += seconds
    return sorted(by_package.items(), key=lambda kv: -kv[1])[:top]


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def report(results: dict[str, list[PhaseResult]], imports: dict[str, tuple], burst: int) -> None:
    """A table of every measured location side by side, then the targets judged against the floor."""
    names = [n for n in ("product-celery", "product", "floor") if results.get(n)]

    def pooled(rs: list[PhaseResult], name: str) -> list[float]:
        return [v for r in rs for v in getattr(r, name)]

    def figures(rs: list[PhaseResult]) -> dict[str, tuple[float, list[float]]]:
        return {
            "run worker CPU-s per run (median of runs)": (med(pooled(rs, "worker_cpu")),
                                                          [med(r.worker_cpu) for r in rs]),
            "run worker peak RSS MiB (median; celery: group)": (med(pooled(rs, "worker_rss_mib")), []),
            f"burst of {burst} drained, s": (med([r.burst_drain for r in rs]), [r.burst_drain for r in rs]),
            "launch → success, s (median, sequential)": (med(pooled(rs, "launch_to_success")),
                                                         [med(r.launch_to_success) for r in rs]),
            "XADD → completed, s (median, sequential)": (med(pooled(rs, "xadd_to_completed")),
                                                         [med(r.xadd_to_completed) for r in rs if r.xadd_to_completed]),
            "daemon CPU-s per run": (med([r.daemon_cpu_per_run for r in rs]), []),
            "code server CPU-s per run": (med([r.code_server_cpu_per_run for r in rs]), []),
            "Redis + S3 server + PostgreSQL CPU-s per run": (med([r.backing_cpu_per_run for r in rs]), []),
            "load average (1 min) during the phases": (med([r.load_average for r in rs]),
                                                       [r.load_average for r in rs]),
        }

    table = {n: figures(results[n]) for n in names}
    print()
    print(f"{'':50}" + "".join(f"{n:>24}" for n in names))
    for label in table[names[0]]:
        cells = []
        for n in names:
            value, runs = table[n][label]
            cells.append(spread(runs) if len(runs) > 1 else (f"{value:.2f}" if value == value else "n/a"))
        print(f"{label:50}" + "".join(f"{c:>24}" for c in cells))
    failed = sum(r.burst_failed for n in names for r in results[n])
    if failed:
        print(f"warning: {failed} burst runs did not succeed")
    print("\n(per-repeat medians in [min–max] when repeated; the pooled median is the figure judged)")
    if "floor" not in table:
        return
    floor = table["floor"]
    cpu_f = floor["run worker CPU-s per run (median of runs)"][0]
    drain_f = floor[f"burst of {burst} drained, s"][0]
    l2s_f = floor["launch → success, s (median, sequential)"][0]
    for name in (n for n in names if n != "floor"):
        mine = table[name]
        # Everything a run costs on our side: the worker, plus the daemon's and code server's share.
        cpu = mine["run worker CPU-s per run (median of runs)"][0]
        total = cpu + mine["daemon CPU-s per run"][0] + mine["code server CPU-s per run"][0]
        total_f = cpu_f + floor["daemon CPU-s per run"][0] + floor["code server CPU-s per run"][0]
        drain = mine[f"burst of {burst} drained, s"][0]
        latency = mine["XADD → completed, s (median, sequential)"][0]
        print(f"\nTargets of issue 18 for {name} (against the floor, measured side by side):")
        checks = [
            ("run worker CPU-s ≤ 0.5 × floor", f"{cpu:.2f} vs {cpu_f:.2f}: {cpu / cpu_f:.2f}×", cpu <= 0.5 * cpu_f),
            ("worker + daemon + code server CPU-s (info)", f"{total:.2f} vs {total_f:.2f}: {total / total_f:.2f}×",
             True),
            ("median XADD→completed ≤ 0.6 × floor launch→success", f"{latency:.2f} s vs {l2s_f:.2f} s: "
             f"{latency / l2s_f:.2f}×", latency <= 0.6 * l2s_f),
            (f"burst of {burst} drained ≤ 0.6 × floor", f"{drain:.1f} s vs {drain_f:.1f} s: {drain / drain_f:.2f}×",
             drain <= 0.6 * drain_f),
        ]
        for label, figure, ok in checks:
            print(f"  {'met   ' if ok else 'MISSED'} {label:52} {figure}")


def print_import_figures(imports: dict) -> None:
    print("\nThe product's own CPU-s per run, step by step (a fresh process, after what every run worker loads):")
    for step, seconds in imports["breakdown"].items():
        print(f"  {step:44} {seconds:.3f}")
    print("\nPackages only the product imports (self import time, s):")
    for package, seconds in imports["extra"]:
        print(f"  {package:28} {seconds:.3f}")


def service_pids(services: list[Service], base: Path) -> list[int]:
    """Pids of the bench's own Redis and S3 server, and of its PostgreSQL postmaster when there is one."""
    pids = [s.process.pid for s in services if s.process is not None]
    postmaster = base / "postgres" / "data" / "postmaster.pid"
    if postmaster.exists():
        pids.append(int(postmaster.read_text().split()[0]))
    return pids


def start_s3(base: Path) -> Service:
    port = free_port()
    log = open(base / "moto.log", "wb")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout=60, proc=proc)
    return Service("moto", f"http://127.0.0.1:{port}", proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="phases per location (alternating)")
    parser.add_argument("--sequential", type=int, default=8, help="requests sent one after another per phase")
    parser.add_argument("--burst", type=int, default=20, help="requests sent at once per phase")
    parser.add_argument("--instance", choices=["dev", "deploy"], default="dev",
                        help="dev: instance/dagster.yaml (the run command's); deploy: deploy/dagster.yaml")
    parser.add_argument("--source", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the Eclipse source database: the run command's SQLite file, or PostgreSQL (production)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds one run may take")
    parser.add_argument("--only", choices=["product", "floor"], help="measure one location (no ratios)")
    parser.add_argument("--launcher", choices=["celery", "default", "both"], default="both",
                        help="how the product's runs are launched (the floor always uses Dagster's default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, homes)")
    args = parser.parse_args()
    # Stop cleanly (daemons, servers, temporary folder) on Ctrl-C or kill, even when started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))

    base = Path(tempfile.mkdtemp(prefix="eclipse-run-cost-"))
    services: list[Service] = []
    try:
        services.append(start_redis(log_file=base / "redis.log"))
        services.append(start_s3(base))
        redis_url, s3_url = services[0].url, services[1].url
        env = {**os.environ, "ECLIPSE_REDIS_URL": redis_url, "AWS_ENDPOINT_URL": s3_url,
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1",
               "ECLIPSE_S3_BUCKET": BUCKET, "ECLIPSE_DATA_DIR": str(base / "data"),
               "ECLIPSE_DATABASE_URL": f"sqlite:///{base / 'eclipse.db'}"}
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
        make_s3_client(s3_url).create_bucket(Bucket=BUCKET)
        instance_yaml = ROOT / ("instance" if args.instance == "dev" else "deploy") / "dagster.yaml"
        postgres_admin = None
        if args.instance == "deploy" or args.source == "postgresql":
            services.append(start_postgres(base / "postgres"))
            postgres_admin = services[-1].url
        if args.instance == "deploy":
            env["DAGSTER_COMPUTE_LOGS_BUCKET"] = LOGS_BUCKET
            make_s3_client(s3_url).create_bucket(Bucket=LOGS_BUCKET)
        if args.source == "postgresql":
            env["ECLIPSE_DATABASE_URL"] = create_database(postgres_admin, "eclipse_source")
        # Deployed code has its bytecode (the image compiles it); with PYTHONDONTWRITEBYTECODE set, a run
        # worker would otherwise compile the location's modules every time.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "eclipse_exports", "bench/floor"], cwd=ROOT,
                       check=True)
        print(f"seeding the demo source database (small) in {env['ECLIPSE_DATABASE_URL']}", flush=True)
        load_demo_data(create_engine(env["ECLIPSE_DATABASE_URL"]), "small")
        client = redis.Redis.from_url(redis_url)

        imports: dict[str, tuple] = {}
        for location in (PRODUCT, FLOOR):
            cumulative, cpu, own = import_cost(location, env)
            imports[location.name] = (cumulative, cpu, own)
        imports["extra"] = heaviest_extra_packages(imports["product"][2], imports["floor"][2])
        imports["breakdown"] = product_breakdown(env)

        products = {"celery": [PRODUCT_CELERY], "default": [PRODUCT], "both": [PRODUCT_CELERY, PRODUCT]}[args.launcher]
        results: dict[str, list[PhaseResult]] = {loc.name: [] for loc in (*products, FLOOR)}
        for repeat in range(args.repeats):
            order = (*products, FLOOR) if repeat % 2 == 0 else (FLOOR, *reversed(products))
            for location in [loc for loc in order if args.only in (None, loc.name, loc.name.split("-")[0])]:
                phase_env = dict(env)
                if postgres_admin:
                    phase_env.update(fresh_dagster_database(postgres_admin, f"dagster_{location.name}_{repeat}"))
                print(f"repeat {repeat + 1}/{args.repeats}: {location.name} …", flush=True)
                started = time.monotonic()
                result = run_phase(location, base / f"{location.name}-{repeat}", phase_env, instance_yaml, client,
                                   args.sequential, args.burst, args.timeout, service_pids(services, base))
                results[location.name].append(result)
                print(f"  {time.monotonic() - started:.0f}s: worker CPU-s median {med(result.worker_cpu):.2f} "
                      f"(n={len(result.worker_cpu)}), burst drained in {result.burst_drain:.1f}s, "
                      f"launch→success median {med(result.launch_to_success):.2f}s"
                      + (f", XADD→completed median {med(result.xadd_to_completed):.2f}s"
                         if result.xadd_to_completed else "")
                      + f"; load average {result.load_average:.2f}", flush=True)
        print(f"\ninstance: {instance_yaml.relative_to(ROOT)}; source: {args.source}; {psutil.cpu_count()} CPUs; "
              f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.repeats:
            report(results, imports, args.burst)
        print_import_figures(imports)
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            subprocess.run(["rm", "-rf", str(base)], check=False)


def create_database(postgres_admin: str, name: str) -> str:
    """Create database ``name`` in the bench's PostgreSQL cluster; returns its URL."""
    admin = create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_admin.rsplit("/", 1)[0] + f"/{name}"


def fresh_dagster_database(postgres_admin: str, name: str) -> dict[str, str]:
    """A new database for one phase's Dagster storage; the DAGSTER_PG_* variables naming it."""
    url = make_url(create_database(postgres_admin, name))
    return {"DAGSTER_PG_HOST": url.host or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_USERNAME": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_DB": name}

if __name__ == "__main__":
    main()
