"""What one export run costs next to Dagster's floor: CPU per run worker, burst drain time, latency, import time.

    .venv/bin/python bench/run_cost.py [--repeats 2] [--burst 20] [--sequential 8] [--instance dev|deploy]
                                       [--source sqlite|postgresql]

Runs the same requests twice per repeat, on the same instance settings,
product and floor alternating:

- **product**: the Eclipse Exports code location (``eclipse_exports.definitions``);
  each request is a small export (one week of a demo workspace's critical alerts, CSV)
  XADDed raw on the request stream, through the real path (sensor → queued run
  → run worker → S3 → status hash);
- **floor**: ``bench/floor/dagster_floor.py``, one trivial asset launched by a
  sensor of the same shape (long poll of a Redis stream, one run per entry).

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
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import make_s3_client

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
REQUEST_STREAM = "eclipse:exports:requests"
FLOOR_STREAM = "bench:floor:requests"
BUCKET, LOGS_BUCKET = "bench-exports", "bench-dagster-logs"
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]

TARGET_CPU_EXTRA = 0.7
TARGET_BURST_RATIO = 1.15
TARGET_MEDIAN_EXTRA = 1.0


@dataclass
class Location:
    """A code location under test and how a request for it is sent and found."""

    name: str
    module: str
    working_directory: Path
    tag: str

    def workspace_yaml(self) -> str:
        return (f"load_from:\n  - python_module:\n      module_name: {self.module}\n"
                f"      working_directory: {self.working_directory}\n      location_name: {self.name}\n")

    def send(self, client: redis.Redis, ids: list[str]) -> float:
        """XADD one request per id in one pipeline; returns the wall-clock time they were sent."""
        pipe = client.pipeline(transaction=False)
        for request_id in ids:
            if self.name == "product":
                pipe.xadd(REQUEST_STREAM, {"payload": product_payload(request_id)})
            else:
                pipe.xadd(FLOOR_STREAM, {"id": request_id})
        sent = time.time()
        pipe.execute()
        return sent


PRODUCT = Location("product", "eclipse_exports.definitions", ROOT, "eclipse/job_id")
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
        (self.home / "dagster.yaml").write_text(instance_yaml.read_text())
        workspace = base / "workspace.yaml"
        workspace.write_text(location.workspace_yaml())
        self.env = {**env, "DAGSTER_HOME": str(self.home), "ECLIPSE_BENCH_RUSAGE_DIR": str(self.rusage_dir),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH / "probe"), env.get("PYTHONPATH")]))}
        self.log = open(base / "daemon.log", "wb")
        self.process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=base,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        # The instance here reads the same dagster.yaml, and its variables, as the daemon.
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        self.instance = DagsterInstance.from_config(str(self.home))

    def stop(self) -> None:
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
        backing_start = process_tree_cpu(service_pids)
        result.load_average = os.getloadavg()[0]

        measured = []
        for n in range(sequential):
            job = f"bench-{location.name}-{tag}-seq{n}"
            sent = location.send(client, [job])
            if location is PRODUCT:
                result.xadd_to_completed += product_completed(client, [job], {job: sent}, timeout).values()
            measured += deployment.wait_runs([job], timeout)
            time.sleep(0.3 * (n % 4))  # vary the phase against the daemon's sensor cycle

        result.launch_to_success = [r.end_time - r.create_timestamp.timestamp() for r in measured
                                    if r.dagster_run.status == DagsterRunStatus.SUCCESS]

        if burst:
            jobs = [f"bench-{location.name}-{tag}-burst{n}" for n in range(burst)]
            sent = location.send(client, jobs)
            if location is PRODUCT:
                product_completed(client, jobs, dict.fromkeys(jobs, sent), timeout * 4)
            records = deployment.wait_runs(jobs, timeout * 4)
            result.burst_drain = max(r.end_time for r in records) - sent
            result.burst_failed = sum(r.dagster_run.status != DagsterRunStatus.SUCCESS for r in records)
            measured += records

        daemon_end, code_server_end = deployment.service_cpu()
        result.daemon_cpu_per_run = (daemon_end - service_start[0]) / max(1, len(measured))
        result.backing_cpu_per_run = (process_tree_cpu(service_pids) - backing_start) / max(1, len(measured))
        result.code_server_cpu_per_run = (code_server_end - service_start[1]) / max(1, len(measured))
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
    product, floor = results["product"], results["floor"]

    def pooled(rs: list[PhaseResult], name: str) -> list[float]:
        return [v for r in rs for v in getattr(r, name)]

    cpu_p, cpu_f = med(pooled(product, "worker_cpu")), med(pooled(floor, "worker_cpu"))
    drain_p, drain_f = med([r.burst_drain for r in product]), med([r.burst_drain for r in floor])
    lat_p, l2s_f = med(pooled(product, "xadd_to_completed")), med(pooled(floor, "launch_to_success"))
    l2s_p = med(pooled(product, "launch_to_success"))
    rows = [
        ("run worker CPU-s per run (median of runs)", cpu_p, cpu_f,
         [med(r.worker_cpu) for r in product], [med(r.worker_cpu) for r in floor]),
        ("run worker peak RSS MiB (median)", med(pooled(product, "worker_rss_mib")),
         med(pooled(floor, "worker_rss_mib")), [], []),
        (f"burst of {burst} drained, s", drain_p, drain_f,
         [r.burst_drain for r in product], [r.burst_drain for r in floor]),
        ("launch → success, s (median, sequential)", l2s_p, l2s_f,
         [med(r.launch_to_success) for r in product], [med(r.launch_to_success) for r in floor]),
        ("XADD → completed, s (median, sequential)", lat_p, float("nan"),
         [med(r.xadd_to_completed) for r in product], []),
        ("daemon CPU-s per run", med([r.daemon_cpu_per_run for r in product]),
         med([r.daemon_cpu_per_run for r in floor]), [], []),
        ("code server CPU-s per run", med([r.code_server_cpu_per_run for r in product]),
         med([r.code_server_cpu_per_run for r in floor]), [], []),
        ("Redis + S3 server + PostgreSQL CPU-s per run", med([r.backing_cpu_per_run for r in product]),
         med([r.backing_cpu_per_run for r in floor]), [], []),
        ("import of the code location, s (importtime)", imports["product"][0], imports["floor"][0], [], []),
        ("import of the code location, CPU-s", imports["product"][1], imports["floor"][1], [], []),
    ]
    print()
    print(f"{'':46} {'product':>24} {'floor':>24}")
    for label, p, f, p_runs, f_runs in rows:
        p_text = spread(p_runs) if len(p_runs) > 1 else (f"{p:.2f}" if p == p else "n/a")
        f_text = spread(f_runs) if len(f_runs) > 1 else (f"{f:.2f}" if f == f else "n/a")
        print(f"{label:46} {p_text:>24} {f_text:>24}")
    failed = sum(r.burst_failed for r in product + floor)
    if failed:
        print(f"warning: {failed} burst runs did not succeed")
    print("\n(per-repeat medians in [min–max] when repeated; the pooled median is the figure judged)")
    print("\nTargets (product against the floor, measured side by side):")
    checks = [
        ("run worker CPU ≤ floor + 0.7 CPU-s", f"{cpu_p:.2f} vs {cpu_f:.2f}: +{cpu_p - cpu_f:.2f} CPU-s",
         cpu_p <= cpu_f + TARGET_CPU_EXTRA),
        ("burst drained ≤ 1.15 × floor", f"{drain_p:.1f} s vs {drain_f:.1f} s: {drain_p / drain_f:.2f}×",
         drain_p <= drain_f * TARGET_BURST_RATIO),
        ("median XADD→completed ≤ floor launch→success + 1 s", f"{lat_p:.2f} s vs {l2s_f:.2f} s: "
         f"+{lat_p - l2s_f:.2f} s", lat_p <= l2s_f + TARGET_MEDIAN_EXTRA),
    ]
    for name, figures, ok in checks:
        print(f"  {'met   ' if ok else 'MISSED'} {name:52} {figures}")


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

        results: dict[str, list[PhaseResult]] = {"product": [], "floor": []}
        for repeat in range(args.repeats):
            order = (PRODUCT, FLOOR) if repeat % 2 == 0 else (FLOOR, PRODUCT)
            for location in [loc for loc in order if args.only in (None, loc.name)]:
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
        if args.repeats and not args.only:
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
