"""A real Dagster deployment for the reliability tests: `dagster dev` (webserver, daemon, code server) in a
process group of its own, killed and restarted for real, and the requests and statuses around it.

    dev = DagsterDev(home, env).start()
    send_requests(client, small_requests(60, prefix="burst"))
    dev.kill()                      # SIGKILL to the whole process group and the Celery run worker groups
    dev.start()                     # same DAGSTER_HOME: the daemon, sensors and queue carry on
    final = wait_for_terminal(client, ids, timeout=600)

Nothing here is mocked: the processes are Dagster's own, the requests go through Redis as the Eclipse web app
sends them (raw JSON in ``payload``), and outcomes are read from the status hashes, the Dagster instance's run
storage and the bucket.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import psutil
import redis
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from tests.run_workers import RunWorkerGroup

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"completed", "failed", "rejected", "expired"}
# Small exports the demo data's members may make: (workspace, user).
MEMBERS = [("ws_acme", "usr_acme_owner"), ("ws_globex", "usr_globex_admin"), ("ws_initech", "usr_initech_owner")]
FORMATS = ("csv", "jsonl", "parquet", "json")


class DagsterDev:
    """``dagster dev`` on ``home`` (its ``dagster.yaml`` copied from ``instance_yaml``), UI on a free port.

    ``env`` is the whole environment of the deployment (the ``ECLIPSE_*`` and AWS variables). Every start
    runs in a new session, so :meth:`kill` reaches the webserver, the daemon, the code server and the run
    workers at once, as an operator's ``kill -9 -PGID`` or a host crash would.
    """

    def __init__(self, home: Path, env: dict[str, str], port: int,
                 instance_yaml: Path = ROOT / "instance" / "dagster.yaml", worker_groups: int = 1,
                 concurrency: int = 4) -> None:
        # A queue of its own: deployments sharing one Redis must not take each other's runs.
        self.home, self.port = home, port
        self.env = {**env, "DAGSTER_HOME": str(home), "ECLIPSE_RUN_QUEUE": f"runs-{home.name}-{os.urandom(3).hex()}"}
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(instance_yaml, home / "dagster.yaml")
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # The Celery run workers, each group a process group of its own (as on another machine).
        self.workers = [RunWorkerGroup(self.env, home / f"workers-{n}.log", concurrency, name=f"runs-{n}-{port}@test")
                        for n in range(worker_groups)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "DagsterDev":
        """Start (or restart) the deployment and its run workers; with ``wait``, until the webserver answers
        (180 s at most)."""
        self.starts += 1
        for group in self.workers:
            group.start(wait=False)
        log = open(self.home / f"dagster-dev-{self.starts}.log", "wb")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # A session started as a background job of a non-interactive shell has SIGINT ignored; dagster dev
            # would then ignore SIGINT and SIGTERM alike, and every stop would wait for the SIGKILL.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        log.close()
        if wait:
            wait_until(self._answers, 180, "the Dagster webserver")
            for group in self.workers:
                group.wait_alive()
        return self

    def _answers(self) -> bool:
        try:
            return urllib.request.urlopen(self.url + "/server_info", timeout=5).status == 200
        except OSError:
            return False

    def group(self) -> list[psutil.Process]:
        """Every live process of the deployment's process group."""
        if self.proc is None:
            return []
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == self.proc.pid:
                    found.append(proc)
            except (ProcessLookupError, psutil.Error):
                continue
        return found

    def kill(self) -> int:
        """SIGKILL the whole process group and the run worker groups, and wait until they are gone; returns how
        many processes died."""
        assert self.proc is not None
        killed = sum(group.kill() for group in self.workers)
        victims = self.group()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        psutil.wait_procs(victims, timeout=30)
        return len(victims) + killed

    def stop(self) -> None:
        """Stop cleanly (SIGINT, as Ctrl-C; the run workers SIGTERM), else SIGKILL after 60 s."""
        for group in self.workers:
            group.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def instance(self) -> DagsterInstance:
        """The deployment's instance, opened from its ``DAGSTER_HOME`` (read its runs and events)."""
        return DagsterInstance.from_config(str(self.home))


def wait_until(check, timeout: float, what: str, every: float = 0.5):
    """``check()``'s first truthy value within ``timeout`` seconds, else ``AssertionError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def small_requests(count: int, prefix: str, members: list[tuple[str, str]] = MEMBERS) -> dict[str, dict]:
    """``count`` small exports across ``members`` (rows since February 2026 only), keyed by request id."""
    found = {}
    for n in range(count):
        workspace, user = members[n % len(members)]
        resource = ("alerts", "infringements", "actions")[n % 3]
        found[f"{prefix}-{n:04d}"] = {"id": f"{prefix}-{n:04d}", "workspaceId": workspace, "userId": user,
                                      "resourceType": resource, "format": FORMATS[n % len(FORMATS)],
                                      "filters": {"from": "2026-02-01T00:00:00Z"}}
    return found


def send_requests(client: redis.Redis, requests: Iterable[dict]) -> None:
    """XADD every request in one pipelined round trip, as the web app's bulk producer does."""
    pipe = client.pipeline(transaction=False)
    for request in requests:
        pipe.xadd("eclipse:exports:requests", {"payload": json.dumps(request)})
    pipe.execute()


def statuses(client: redis.Redis, job_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each job's status hash as strings (``{}`` when it has none)."""
    ids = list(job_ids)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(f"eclipse:exports:job:{job_id}")
    return {job_id: {k.decode(): v.decode() for k, v in raw.items()} for job_id, raw in zip(ids, pipe.execute(),
                                                                                          strict=True)}


def wait_for_terminal(client: redis.Redis, job_ids: Iterable[str], timeout: float) -> dict[str, dict[str, str]]:
    """Wait until every job's status is terminal; ``AssertionError`` listing the rest after ``timeout`` s."""
    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        found = statuses(client, ids)
        waiting = {j: f.get("status") for j, f in found.items() if f.get("status") not in TERMINAL}
        if not waiting:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(waiting)} jobs not finished after {timeout:.0f}s: "
                                 f"{Counter(waiting.values())}, e.g. {list(waiting.items())[:5]}")
        time.sleep(1)


def runs_by_job(instances: Iterable[DagsterInstance], job_ids: Iterable[str]) -> dict[str, list]:
    """Every run of each job id across ``instances``, from their run storage (tag ``eclipse/job_id``)."""
    wanted = set(job_ids)
    found: dict[str, list] = {j: [] for j in wanted}
    for instance in instances:
        for run in instance.get_runs(RunsFilter(tags={"eclipse/job_id": list(wanted)})):
            found[run.tags["eclipse/job_id"]].append(run)
    return found


def successful(runs: list) -> list:
    """The runs that succeeded."""
    return [r for r in runs if r.status == DagsterRunStatus.SUCCESS]
