"""One group of Celery run workers (``eclipse-exports run-workers``): a parent that imports Dagster and the code
location once, then forks a pool of children that execute runs handed over by ``CeleryRunWorkerLauncher``.

- **Warm children.** The parent imports the code location and builds its repository *before* Celery forks the pool,
  so every child inherits both and a run costs only its own work, not a fresh interpreter (``docs/deployment.md``
  has the figures).
- **Nothing shared.** The parent opens no database, Dagster instance or S3 client; each child opens its own on its
  first run (``launchers/run_task.py``). The parent's only connections are Celery's broker connection and the
  Redis client of its heartbeat thread, which children never use.
- **Recycled children.** A child is replaced after ``worker_max_tasks_per_child`` runs or once its resident memory
  passes ``worker_max_memory_per_child`` (``launchers/celery.py``), so a slow leak in a library cannot grow forever.
- **Alive, for all to see.** A thread in the parent refreshes the group's entry in Redis every 2 s
  (:class:`~eclipse_exports.queue.run_workers.RunWorkerRegistry`): the launcher refuses to hand runs to a queue no
  live group consumes, and ``dev`` says when its workers are down.
- **Code changes take effect.** The same thread watches the code location's files; when they change, the group
  stops taking runs, lets the runs in flight finish on the old code, and re-executes itself with the new code
  (Celery's own warm restart). A child that meets a run before its group noticed puts the task back on the queue.
  A redeploy restarts the groups anyway (systemd, Kubernetes rollout).
"""

import atexit
import hashlib
import importlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from celery import signals
from celery.apps.worker import _reload_current_worker
from celery.utils.nodenames import host_format
from celery.worker import state as worker_state

from eclipse_exports.config import Settings
from eclipse_exports.launchers import run_task
from eclipse_exports.launchers.celery import CeleryRunWorkerLauncher
from eclipse_exports.queue.run_workers import NODE_BEAT_SECONDS, RunWorkerRegistry
from eclipse_exports.reports.pdf import close_pdf_printer, keep_pdf_printer_warm

CODE_LOCATION = "eclipse_exports.definitions"


class RunWorkersRefused(Exception):
    """The run workers cannot start as configured (the instance does not use the Celery run launcher, say)."""


def instance_launcher(dagster_home: str | None = None) -> CeleryRunWorkerLauncher:
    """The run launcher that ``$DAGSTER_HOME/dagster.yaml`` configures, built without opening the instance's storage.

    Raises :class:`RunWorkersRefused` when ``DAGSTER_HOME`` is unset or names another launcher.
    """
    import yaml
    from dagster._serdes import ConfigurableClassData

    home = dagster_home or os.environ.get("DAGSTER_HOME")
    if not home or not (Path(home) / "dagster.yaml").exists():
        raise RunWorkersRefused("DAGSTER_HOME must name a folder with the deployment's dagster.yaml (the run "
                                "command's env file sets it)")
    config = yaml.safe_load((Path(home) / "dagster.yaml").read_text()) or {}
    entry = config.get("run_launcher") or {}
    if entry.get("class") != CeleryRunWorkerLauncher.__name__:
        raise RunWorkersRefused(f"{home}/dagster.yaml launches runs with {entry.get('class') or 'the default launcher'}"
                                f", not {CeleryRunWorkerLauncher.__name__}: run workers would get no runs")
    data = ConfigurableClassData(entry["module"], entry["class"], yaml.safe_dump(entry.get("config") or {}))
    return data.rehydrate(as_type=CeleryRunWorkerLauncher)


def code_fingerprint(package_dir: Path) -> str:
    """A digest of every ``.py`` file's path, size and modification time under ``package_dir``."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def preload(code_location: str) -> Path:
    """Import ``code_location`` and build its repository (children inherit both); returns its package folder."""
    module = importlib.import_module(code_location)
    defs = getattr(module, "defs", None)
    if defs is not None:
        defs.get_repository_def()
    return Path(sys.modules[code_location.split(".")[0]].__file__).parent


class GroupBeat:
    """The parent's thread: refreshes the group's entry every :data:`NODE_BEAT_SECONDS` and restarts the group when
    the code on disk changes."""

    def __init__(self, registry: RunWorkerRegistry, node: str, queues: list[str], concurrency: int,
                 code_changed: Callable[[], bool], say: Callable[[str], None]) -> None:
        self.registry, self.node, self.queues, self.concurrency = registry, node, queues, concurrency
        self.code_changed, self.say = code_changed, say
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="run-worker-beat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.registry.forget_node(self.node)
        except redis.RedisError:
            pass  # the entry goes stale by itself

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.registry.beat_node(self.node, self.queues, self.concurrency, socket.gethostname(), os.getpid())
            except redis.RedisError as exc:
                self.say(f"run workers: cannot reach Redis for the heartbeat ({type(exc).__name__}); retrying")
            if self.code_changed():
                self.say("run workers: the code location changed on disk; finishing the runs in flight, then "
                         "restarting with the new code")
                self.registry.forget_node(self.node)
                atexit.register(_reload_current_worker)
                worker_state.should_stop = 0
                return
            self.stopped.wait(NODE_BEAT_SECONDS)


def run_workers(concurrency: int, queue: str | None = None, name: str | None = None,
                code_location: str = CODE_LOCATION, loglevel: str = "INFO",
                say: Callable[[str], None] = print) -> None:
    """Run one worker group in the foreground until SIGTERM/SIGINT (a warm shutdown: runs in flight finish).

    ``concurrency`` children execute one run each at a time; ``queue`` defaults to the launcher's queue;
    ``name`` (the Celery node name) defaults to ``runs-<pid>@<host>``. Raises :class:`RunWorkersRefused` when
    the deployment's instance does not use :class:`CeleryRunWorkerLauncher`.
    """
    launcher = instance_launcher()
    queue = queue or launcher.default_queue
    node = host_format(name) if name else f"runs-{os.getpid()}@{socket.gethostname()}"  # %h etc. as Celery does
    package_dir = preload(code_location)
    loaded = code_fingerprint(package_dir)
    run_task.code_changed = lambda: code_fingerprint(package_dir) != loaded
    registry = RunWorkerRegistry(redis.Redis.from_url(launcher.broker, socket_timeout=10, socket_connect_timeout=5))
    beat = GroupBeat(registry, node, [queue], concurrency, run_task.code_changed, say)
    signals.worker_process_init.connect(run_task.block_real_interrupts, weak=False)
    # A child runs report after report: its PDF browser outlives a run for a while (reports/pdf.py).
    warm_seconds = Settings.from_env().pdf_warm_seconds
    signals.worker_process_init.connect(lambda **_: keep_pdf_printer_warm(warm_seconds), weak=False)
    signals.worker_process_shutdown.connect(lambda **_: close_pdf_printer(), weak=False)
    signals.worker_ready.connect(lambda **_: beat.start(), weak=False)
    signals.worker_shutting_down.connect(lambda **_: beat.stop(), weak=False)
    say(f"run workers: {node}, {concurrency} children on queue {queue} (code location {code_location}, loaded "
        f"{time.strftime('%H:%M:%S')})")
    launcher.celery.worker_main(["worker", "--pool=prefork", f"--concurrency={concurrency}", f"--queues={queue}",
                                 f"--hostname={node}", f"--loglevel={loglevel}", "--without-gossip",
                                 "--without-mingle", "--without-heartbeat", "-O", "fair"])
