"""Celery run workers for tests: ``eclipse-exports run-workers`` as a real process group of its own, started,
killed and stopped by PID, as a second machine or an operator would.

    workers = RunWorkerGroup(env, home / "workers-a.log", concurrency=2).start()
    ...
    workers.kill()      # SIGKILL to the whole group: parent and children
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent


class RunWorkerGroup:
    """One worker group (``eclipse-exports run-workers``) in a session of its own, on ``env`` (which names
    ``DAGSTER_HOME`` and the Redis); its output goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2, name: str | None = None) -> None:
        self.env, self.log, self.concurrency = env, log, concurrency
        self.name = name or f"runs-{log.stem}-{os.urandom(2).hex()}@test"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True, timeout: float = 120.0) -> "RunWorkerGroup":
        """Start the group; with ``wait``, until it reports itself alive in Redis."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "eclipse-exports"), "run-workers", "--concurrency",
                 str(self.concurrency), "--name", self.name, "--loglevel", "INFO"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_alive(timeout)
        return self

    def alive_in_redis(self) -> bool:
        from eclipse_exports.queue.run_workers import RunWorkerRegistry

        client = redis.Redis.from_url(self.env["ECLIPSE_REDIS_URL"])
        try:
            return any(n.name == self.name for n in RunWorkerRegistry(client).live_nodes())
        finally:
            client.close()

    def wait_alive(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.alive_in_redis():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"run workers exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"run workers not alive after {timeout:.0f}s: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def processes(self) -> list[psutil.Process]:
        """The group's live processes (parent and children)."""
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

    def children(self) -> list[psutil.Process]:
        """The prefork children (the processes that execute runs)."""
        if self.proc is None:
            return []
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.Error:
            return []

    def kill(self) -> int:
        """SIGKILL the whole group; returns how many processes died."""
        if self.proc is None or self.proc.poll() is not None:
            return 0
        victims = self.processes()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        psutil.wait_procs(victims, timeout=30)
        return len(victims)

    def stop(self, timeout: float = 60.0) -> None:
        """Warm shutdown (SIGTERM to the parent, as systemd's KillMode=mixed, Kubernetes and `dev` send it: runs in
        flight finish), else SIGKILL after ``timeout`` s. A SIGTERM to every child would reach the runs: Dagster
        maps it onto its interrupt while a run executes."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            victims = self.processes()
            if victims:
                os.killpg(self.proc.pid, signal.SIGKILL)
                psutil.wait_procs(victims, timeout=30)
