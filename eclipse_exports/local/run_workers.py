"""The run command's Celery run workers: ``eclipse-exports run-workers`` beside ``dagster dev``, watched and restarted.

:class:`RunWorkerSupervisor` starts one worker group as a child process, checks every few seconds that it runs and
reports itself alive in Redis (``queue/run_workers.py``), says so in one line whenever that changes ("run workers:
down …" while runs cannot start), restarts a group that exited, and stops it with the rest. Nothing here imports
Dagster: the group is a child process.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from eclipse_exports.queue.run_workers import RunWorkerRegistry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
STARTUP_GRACE_SECONDS = 60.0


class RunWorkerSupervisor:
    """One run worker group of ``concurrency`` children for the run command, on the Redis at ``redis_url``.

    ``say`` gets one line per change of state. :meth:`check` is called from the run command's wait loop;
    :meth:`stop` ends the group (SIGTERM: runs in flight finish, up to ``timeout`` s, then SIGKILL).
    """

    def __init__(self, concurrency: int, redis_url: str, log_file: Path, say: Callable[[str], None]) -> None:
        self.concurrency, self.log_file, self.say = concurrency, log_file, say
        self.name = f"runs-dev-{os.getpid()}@{socket.gethostname()}"
        self.registry = RunWorkerRegistry(redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5))
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.state = "starting"

    def start(self) -> None:
        """Start the group (its output appended to ``log_file``)."""
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "eclipse-exports"), "run-workers", "--concurrency",
                 str(self.concurrency), "--name", self.name], cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # stopped by SIGTERM, not Ctrl-C
        self.started_at = time.monotonic()
        self.say(f"run workers: started a group of {self.concurrency} (pid {self.process.pid}, node {self.name}; "
                 f"log {self.log_file})")

    def alive(self) -> bool:
        """Whether the group runs and reported itself alive in Redis within the last seconds."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            return any(node.name == self.name for node in self.registry.live_nodes())
        except redis.RedisError:
            return False

    def check(self) -> None:
        """Say when the group goes up or down; restart it (with backoff) when it exited."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            delay = RESTART_BACKOFF_SECONDS[min(self.restarts, len(RESTART_BACKOFF_SECONDS) - 1)]
            self._set("down", f"run workers: DOWN (exit code {code}); new runs fail with 'no run worker is "
                              f"consuming queue'; restarting in {delay:.0f} s (log {self.log_file})")
            time.sleep(delay)
            self.restarts += 1
            self.start()
            return
        if self.alive():
            self._set("up", f"run workers: up, {self.concurrency} children ready for runs")
            self.restarts = 0
        elif time.monotonic() - self.started_at > STARTUP_GRACE_SECONDS or self.state == "up":
            self._set("down", "run workers: DOWN (not reporting to Redis); runs cannot start until they are back")

    def _set(self, state: str, line: str) -> None:
        if state != self.state:
            self.state = state
            self.say(line)

    def terminate(self) -> None:
        """Begin the warm shutdown (SIGTERM) without waiting for it; :meth:`stop` then waits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (runs in flight finish), SIGKILL after ``timeout`` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
