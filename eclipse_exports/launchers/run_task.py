"""The Celery task a run worker's child executes: one Dagster run, in the child's own (already warm) process.

dagster-celery's own ``execute_job`` task runs whatever it is handed. This one first makes sure the run is
still its to run, and watches it while it runs:

- **One execution per run.** The delivery claims the run in Redis (``SET NX``, :meth:`RunWorkerRegistry.claim_run`)
  and then checks the run's status: a second delivery of the same task (the broker restoring an unacknowledged
  message after a worker died, or after its visibility timeout) finds the claim taken or the run already
  started or finished, and refuses with an engine event saying so. It never executes the run a second time.
- **A heartbeat.** While the run executes, a thread refreshes the run's heartbeat key every few seconds. When the
  whole worker group is SIGKILLed, Celery's result stays ``STARTED`` forever, but the heartbeat expires, and the
  launcher's health check then tells run monitoring the worker is gone (``launchers/celery.py``).
- **Terminate.** The same thread looks for an operator's cancel request and interrupts the run as ``SIGINT`` would,
  so Dagster ends it ``CANCELED``. A real ``SIGINT`` never reaches a run: each child blocks it at start
  (:func:`block_real_interrupts`), so a Ctrl-C in the worker group's terminal, or ``kill -INT`` of its process
  group, is the parent's warm shutdown and the runs in flight finish (``_thread.interrupt_main`` does not go
  through the operating system, so the cancel still lands).
- **Code changes.** A child whose worker group imported the code location before the code on disk changed does
  not run a new run on old code: it puts the task back on the queue and asks its worker group to restart
  (``launchers/run_worker.py``).

Everything a child opens (the Dagster instance, its Redis client) is opened in the child, on first use.
"""

import _thread
import os
import signal
import threading
import time
from collections.abc import Callable

import redis
from celery import Celery, Task
from celery.exceptions import Reject
from dagster import DagsterInstance, DagsterRunStatus
from dagster._cli.api import _execute_run_command_body, _resume_run_command_body

from eclipse_exports.queue.run_workers import RUN_BEAT_SECONDS, RunWorkerRegistry

EXECUTE_RUN_TASK = "eclipse_exports.execute_run"
REINTERRUPT_SECONDS = 15.0
STARTABLE = {DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING}

_child: dict = {}
# Set by the worker group (launchers/run_worker.py): ``() -> bool``, whether the code on disk changed since the
# group imported it; it also asks the group to restart.
code_changed: Callable[[], bool] = lambda: False  # noqa: E731


def child_instance() -> DagsterInstance:
    """This process's Dagster instance (``DAGSTER_HOME``), opened on first use and kept for the next runs."""
    if _child.get("pid") != os.getpid():
        _child.clear()
        _child["pid"] = os.getpid()
    if "instance" not in _child:
        _child["instance"] = DagsterInstance.get()
    return _child["instance"]


def child_registry(redis_url: str) -> RunWorkerRegistry:
    """This process's run-worker registry on ``redis_url`` (the broker's Redis), opened on first use."""
    child_instance()  # resets the cache in a fresh child
    if "registry" not in _child:
        _child["registry"] = RunWorkerRegistry(redis.Redis.from_url(redis_url, socket_timeout=10,
                                                                    socket_connect_timeout=5))
    return _child["registry"]


class RunWatch:
    """A thread that refreshes run ``run_id``'s heartbeat and interrupts the main thread on a cancel request."""

    def __init__(self, registry: RunWorkerRegistry, run_id: str, node: str) -> None:
        self.registry, self.run_id, self.node = registry, run_id, node
        self.stopped = threading.Event()
        self.interrupted = False
        self.thread = threading.Thread(target=self._watch, name=f"run-watch-{run_id[:8]}", daemon=True)

    def __enter__(self) -> "RunWatch":
        self.registry.beat_run(self.run_id, self.node, os.getpid())
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.registry.end_run(self.run_id)

    def _watch(self) -> None:
        last_interrupt = None
        while not self.stopped.wait(RUN_BEAT_SECONDS):
            try:
                self.registry.beat_run(self.run_id, self.node, os.getpid())
                # Interrupt again when the run goes on anyway (Dagster retries an interrupted step that has a
                # RetryPolicy, and an interrupt that lands in library code may be swallowed).
                if ((last_interrupt is None or time.monotonic() - last_interrupt > REINTERRUPT_SECONDS)
                        and self.registry.cancel_requested(self.run_id)):
                    last_interrupt = time.monotonic()
                    self.interrupted = True
                    _thread.interrupt_main()
            except redis.RedisError:
                continue  # a Redis blip: the next beat is in time unless it lasts the heartbeat's whole TTL


def block_real_interrupts(**_: object) -> None:
    """Block ``SIGINT`` in this run-worker child and every thread it starts (Celery's ``worker_process_init``).

    The signal stays pending and is never delivered, so only :class:`RunWatch`'s ``_thread.interrupt_main`` (an
    operator's cancel) interrupts a run; a terminal's Ctrl-C goes to the whole process group and must only stop
    the parent, warmly.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def refusal(instance: DagsterInstance, run_id: str, attempt: int, registry: RunWorkerRegistry, node: str) -> str | None:
    """Why this delivery must not execute run ``run_id`` (``attempt`` 0 = launch, n = resume n), or ``None``
    when it claimed the run and may. A refused run that is waiting to be canceled is marked ``CANCELED``."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} does not exist (deleted before a worker took it)"
    if run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED):
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, "Run canceled before a run worker started it.")
        return f"run {run_id} was canceled before a worker took it"
    # The claim names this incarnation of the group (its parent's pid): a group restarted under the same name is
    # another worker, and the launcher's health check must not take it for the one that ran the run.
    if not registry.claim_run(run_id, f"{node}|{os.getppid()}", attempt):
        return (f"a second delivery of run {run_id}'s task; {registry.claimed_by(run_id, attempt) or 'another worker'} "
                "took the first, so this one does nothing")
    if attempt == 0 and run.status not in STARTABLE:
        return f"run {run_id} is already {run.status.value}; a run is executed once"
    return None


def execute_run(task: Task, run_id: str, attempt: int = 0) -> str:
    """Execute Dagster run ``run_id`` (``attempt`` 0) or resume it (``attempt`` n) in this process.

    Returns what happened, as the task's result: ``"SUCCESS"``/``"FAILURE"`` (the run's outcome; its events are in
    Dagster) or ``"refused: …"``. Raises :class:`celery.exceptions.Reject` (the task goes back on the queue)
    when this worker group's code is older than the code on disk.
    """
    node = task.request.hostname or "unknown"
    instance = child_instance()
    registry = child_registry(task.app.conf.broker_url)
    if code_changed():
        time.sleep(1.0)  # the group restarts within seconds; don't spin the task between queue and child
        raise Reject("the code location changed on disk; this worker group restarts", requeue=True)
    why = refusal(instance, run_id, attempt, registry, node)
    if why is not None:
        run = instance.get_run_by_id(run_id)
        if run is not None:
            instance.report_engine_event(f"Run worker {node} refused the task: {why}.", run)
        return f"refused: {why}"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    body = _execute_run_command_body if attempt == 0 else _resume_run_command_body
    try:
        with RunWatch(registry, run_id, node):
            exit_code = body(run_id, instance, lambda _event: None, set_exit_code_on_failure=True)
    except KeyboardInterrupt:
        exit_code = 1  # the interrupt landed outside Dagster's own handling; the run's status says what happened
    finally:
        signal.signal(signal.SIGINT, previous)
    return "SUCCESS" if exit_code == 0 else "FAILURE"


def register_run_task(app: Celery) -> Task:
    """Register :data:`EXECUTE_RUN_TASK` on ``app`` (launcher and workers must agree on it) and return it.

    Acknowledged late, so a task whose worker group died before taking it is delivered again (and refused if
    its run had started); a task whose child died mid-run fails (``WorkerLostError``) instead of running again.
    """

    @app.task(bind=True, name=EXECUTE_RUN_TASK, track_started=True, acks_late=True, reject_on_worker_lost=False)
    def _execute_run(self: Task, run_id: str, attempt: int = 0) -> str:
        return execute_run(self, run_id, attempt)

    return _execute_run
