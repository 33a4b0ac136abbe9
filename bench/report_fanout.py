"""Weekly fan-out of executive reports: reports per minute and peak memory for many workspaces.

Starts everything itself on free ports (Redis, moto's S3 server, an aiosmtpd
SMTP server that counts messages), seeds an SQLite source with
``demo-data --workspaces N`` (the named demo workspaces plus N generated
ones, each with an owner, an admin and data), then runs the product's own run
command (``eclipse-exports dev``: webserver + daemon + run workers), waits
until it is up as the weekly tick finds it in production (a live run-worker
group, and every workspace added as a partition by the daemon's
``workspace_partitions_sensor``; the wait is printed, not counted), and asks
for last week's report of every active workspace:

- ``--via tick`` (default): the daemon's own tick of
  ``executive_report_schedule``, as in production: the run command starts with
  ``ECLIPSE_REPORT_CRON="* * * * *"``, so the schedule's next tick is the next
  whole minute (the clock starts then); the daemon evaluates it, submits its
  runs (batches of ``--reports-per-run`` workspaces) and the queue hands them to
  the run workers. The week is the last complete one, as on a Monday 06:00
  tick; later ticks find every workspace launched for that week and skip;
- ``--via schedule``: evaluates ``executive_report_schedule`` in this process
  for the latest Monday 06:00 UTC and launches its run requests one by one
  through the webserver's GraphQL (slower to hand over than the daemon: each
  launch waits for the webserver while earlier runs load the machine);
- ``--via backfill``: ``eclipse-exports report-backfill --weeks 1``, the
  UI's backfill (Dagster's backfill daemon looks for new backfills every 30 s,
  which is counted).

Prints reports per minute (from launch, and from the first run's start),
runs, emails, the peak RSS of the whole product (webserver, daemon, code
servers and run processes together) and of the largest run process, and the
CPU seconds the product's processes used (sampled, so a process ending
between samples loses at most 0.25 s). ``--reports-per-run 1`` shows the one-run-per-
report baseline. Figures taken while other work loads the machine are not final.

The PDF beside each report is on by default (``ECLIPSE_REPORT_PDF``);
``--no-pdf`` measures the HTML alone. The runs carry the schedule's tags, so
each report is mailed once, as the weekly schedule's are.

    .venv/bin/python bench/report_fanout.py --workspaces 200
    .venv/bin/python bench/report_fanout.py --workspaces 200 --no-pdf
    .venv/bin/python bench/report_fanout.py --workspaces 40 --reports-per-run 1
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from aiosmtpd.controller import Controller
from dagster import AssetKey, DagsterInstance, RunsFilter, build_schedule_context
from dagster._core.test_utils import freeze_time
from sqlalchemy import create_engine

from eclipse_exports.local.services import free_port, start_redis, wait_for_port
from eclipse_exports.source.demo_data import load_demo_data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
LAUNCH_RUN = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }"""


class Mailbox:
    """aiosmtpd handler counting the messages it accepts."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.count += 1
        return "250 OK"


class TreeSampler(threading.Thread):
    """Samples a process tree every 0.25 s: peak RSS of the sum and of any run process, CPU seconds of each."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_total, self.peak_run, self.stop = root_pid, 0, 0, threading.Event()
        self.cpu: dict[int, float] = {}
        self.kind: dict[int, str] = {}

    def run(self) -> None:
        while not self.stop.wait(0.25):
            try:
                tree = [psutil.Process(self.root), *psutil.Process(self.root).children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                    self.cpu[process.pid] = times.user + times.system
                    if process.pid not in self.kind:
                        self.kind[process.pid] = process_kind(process)
                    total += rss
                    command = " ".join(process.cmdline())
                    # A run is a process the code server spawns (multiprocessing), or `dagster api execute_run`.
                    if "execute_run" in command or ("spawn_main" in command and "resource_tracker" not in command):
                        self.peak_run = max(self.peak_run, rss)
                except psutil.Error:
                    continue
            self.peak_total = max(self.peak_total, total)


def process_kind(process: psutil.Process) -> str:
    """What a process of the product is, for the CPU breakdown: chromium, playwright, run workers, daemon, …"""
    command = " ".join(process.cmdline())
    for marker, kind in (("chrom", "chromium (PDF)"), ("playwright", "playwright driver"),
                         ("run-workers", "run workers"), ("dagster-daemon", "daemon"), ("daemon", "daemon"),
                         ("webserver", "webserver"), ("code-server", "code server"), ("grpc", "code server"),
                         ("api", "code server")):
        if marker in command:
            return kind
    return "other: " + process.name()


def graphql(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": variables})
                                     .encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(payload["errors"][0]["message"])
    return payload["data"]


def latest_tick(now: datetime) -> datetime:
    """The most recent Monday 06:00 UTC at or before ``now``."""
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), datetime.min.time(), UTC)
    tick = monday + timedelta(hours=6)
    return tick if tick <= now else tick - timedelta(days=7)


def launch_via_schedule(home: Path, database_url: str, url: str) -> int:
    """Evaluate the schedule for its latest tick and launch each run request through the webserver."""
    from eclipse_exports.resources import SourceDatabaseResource
    from eclipse_exports.schedules import executive_report_schedule
    from eclipse_exports.schedules.executive_report import SCHEDULE_NAME

    tick = latest_tick(datetime.now(UTC))
    with DagsterInstance.from_config(str(home)) as instance, freeze_time(tick + timedelta(seconds=5)):
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                         resources={"source_db": SourceDatabaseResource(url=database_url)})
        requests = executive_report_schedule(context)  # evaluated as on time: the daemon would run this tick
    for request in requests:
        tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/schedule_name": SCHEDULE_NAME,
                ".dagster/scheduled_execution_time": tick.isoformat()}
        if request.partition_key:
            tags["dagster/partition"] = request.partition_key
        result = graphql(url, LAUNCH_RUN, {"p": {
            "selector": {"repositoryLocationName": "eclipse_exports", "repositoryName": "__repository__",
                         "jobName": "executive_report_job"},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {result}")
    return len(requests)


def wait_until_ready(instance: DagsterInstance, redis_url: str, workspaces: int, dev: subprocess.Popen,
                     timeout: float = 300) -> float:
    """Seconds until a run-worker group reports itself alive and the daemon has added ``workspaces`` partitions.

    Raises ``SystemExit`` when ``dev`` exits or ``timeout`` seconds pass first.
    """
    import redis

    from eclipse_exports.queue.run_workers import RunWorkerRegistry

    registry, started = RunWorkerRegistry(redis.Redis.from_url(redis_url)), time.monotonic()
    while not (registry.live_nodes() and len(instance.get_dynamic_partitions("workspaces")) >= workspaces):
        if dev.poll() is not None:
            raise SystemExit(f"the run command exited with {dev.returncode}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"no live run worker or not all {workspaces} workspaces partitions after {timeout:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspaces", type=int, default=200, help="generated workspaces (plus the 3 named)")
    parser.add_argument("--reports-per-run", type=int, default=20)
    parser.add_argument("--via", choices=["tick", "schedule", "backfill"], default="tick")
    parser.add_argument("--scale", default="small", help="demo-data scale (generated workspaces get 1%% each)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--no-pdf", dest="pdf", action="store_false", help="ECLIPSE_REPORT_PDF=false: HTML only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="report-fanout-"))
    services, processes = [], []
    mailbox, smtp = Mailbox(), None
    try:
        redis = start_redis(log_file=work / "redis.log")
        services.append(redis)
        s3_port = free_port()
        processes.append(subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        wait_for_port("127.0.0.1", s3_port)
        smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        database_url = f"sqlite:///{work / 'eclipse.db'}"
        seeded = time.monotonic()
        counts = load_demo_data(create_engine(database_url), args.scale, generated_workspaces=args.workspaces)
        print(f"seeded {counts['workspaces']:,} workspaces, {counts['alerts']:,} alerts in "
              f"{time.monotonic() - seeded:.0f}s", flush=True)
        port = free_port()
        env = {**os.environ, "ECLIPSE_DATA_DIR": str(work), "DAGSTER_HOME": str(work / "dagster_home"),
               "ECLIPSE_DATABASE_URL": database_url, "ECLIPSE_REDIS_URL": redis.url,
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1",
               "ECLIPSE_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
               "ECLIPSE_REPORTS_PER_RUN": str(args.reports_per_run), "ECLIPSE_REPORT_PDF": str(args.pdf).lower()}
        if args.via == "tick":
            env["ECLIPSE_REPORT_CRON"] = "* * * * *"
        dev = subprocess.Popen([str(BIN / "eclipse-exports"), "dev", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=open(work / "dev.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(dev)
        url = f"http://127.0.0.1:{port}"
        wait_for_port("127.0.0.1", port, timeout=300, proc=dev)
        sampler = TreeSampler(dev.pid)
        sampler.start()
        instance = DagsterInstance.from_config(str(work / "dagster_home"))
        wanted = args.workspaces + 3
        ready = wait_until_ready(instance, redis.url, wanted, dev)
        print(f"the run command was ready (live run workers, {wanted} workspaces partitions) {ready:.0f} s after its "
              "webserver answered", flush=True)
        load_before = os.getloadavg()[0]

        launched = time.monotonic()
        if args.via == "tick":
            # The daemon's scheduler ticks at each whole minute; the next one launches the week's runs.
            now = time.time()
            launched += 60 - now % 60
            runs_requested = None
            print(f"waiting {60 - now % 60:.0f} s for the schedule's next tick", flush=True)
        elif args.via == "schedule":
            # The schedule module reads the batch size when it is first imported, below.
            os.environ["ECLIPSE_REPORTS_PER_RUN"] = str(args.reports_per_run)
            runs_requested = launch_via_schedule(work / "dagster_home", database_url, url)
            print(f"the tick's {runs_requested} runs launched {time.monotonic() - launched:.1f} s after the clock "
                  "started", flush=True)
        else:
            subprocess.run([str(BIN / "eclipse-exports"), "report-backfill", "--weeks", "1", "--dagster-url", url],
                           env=env, check=True, capture_output=True, timeout=300)
            runs_requested = None
        first_start = last_report = None
        deadline = launched + args.timeout
        while time.monotonic() < deadline:
            done = len(instance.get_materialized_partitions(AssetKey("executive_report")))
            runs = instance.get_runs(RunsFilter(job_name="executive_report_job"))
            if first_start is None and any(r.status.value not in ("QUEUED", "NOT_STARTED") for r in runs):
                first_start = time.monotonic()
                print(f"the first run left the queue {first_start - launched:.1f} s after the clock started",
                      flush=True)
            if done >= wanted:
                last_report = time.monotonic()
                break
            if runs and all(r.status.value in ("SUCCESS", "FAILURE", "CANCELED") for r in runs) and \
                    (runs_requested is None or len(runs) >= runs_requested) and done < wanted:
                time.sleep(2)
                if len(instance.get_materialized_partitions(AssetKey("executive_report"))) < wanted:
                    raise SystemExit(f"runs ended with {done} of {wanted} reports; see {work / 'dev.log'}")
            time.sleep(0.5)
        if last_report is None:
            raise SystemExit(f"timed out with {done} of {wanted} reports")
        time.sleep(2)  # the last messages of the last run
        sampler.stop.set()
        runs = instance.get_runs(RunsFilter(job_name="executive_report_job"))
        load_after = os.getloadavg()[0]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        for service in services:
            service.stop()
        if smtp is not None:
            smtp.stop()
    total = last_report - launched
    running = last_report - (first_start or launched)
    result = {
        "workspaces": wanted, "reports_per_run": args.reports_per_run, "via": args.via, "pdf": args.pdf,
        "runs": len(runs),
        "runs_failed": sum(r.status.value != "SUCCESS" for r in runs), "seconds_from_launch": round(total, 1),
        "seconds_from_first_run_start": round(running, 1),
        "reports_per_minute_from_launch": round(wanted / total * 60, 1),
        "reports_per_minute_from_first_run_start": round(wanted / running * 60, 1),
        "emails": mailbox.count, "peak_rss_product_mib": round(sampler.peak_total / 2**20),
        "peak_rss_run_process_mib": round(sampler.peak_run / 2**20),
        "cpu_seconds_product": round(sum(sampler.cpu.values()), 1),
        "cpu_seconds_by_kind": {kind: round(sum(c for pid, c in sampler.cpu.items()
                                                if sampler.kind.get(pid) == kind), 1)
                                for kind in set(sampler.kind.values())},
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)], "cpus": os.cpu_count(),
    }
    print(f"\nexecutive_report fan-out: {wanted} workspaces × 1 week, {args.reports_per_run} per run, via {args.via}, "
          f"PDF {'on' if args.pdf else 'off'}")
    print(f"  runs                      {result['runs']} ({result['runs_failed']} failed)")
    print(f"  reports/min from launch   {result['reports_per_minute_from_launch']:>8} ({total:.0f} s)")
    print(f"  reports/min from 1st run  {result['reports_per_minute_from_first_run_start']:>8} ({running:.0f} s)")
    print(f"  emails                    {result['emails']}")
    print(f"  peak RSS, whole product   {result['peak_rss_product_mib']} MiB (largest run process "
          f"{result['peak_rss_run_process_mib']} MiB)")
    print(f"  CPU seconds, product      {result['cpu_seconds_product']}")
    for kind, seconds in sorted(result["cpu_seconds_by_kind"].items(), key=lambda item: -item[1]):
        print(f"    {kind:24}{seconds:>8}")
    print(f"  load average before/after {result['load_average_before_after']} on {os.cpu_count()} CPUs")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"report_fanout-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"  written to {out.relative_to(ROOT)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
