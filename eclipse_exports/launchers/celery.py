"""``CeleryRunWorkerLauncher``: dagster-celery's ``CeleryRunLauncher`` on the product's Redis, with its gaps closed.

Each run is handed to a warm Celery run worker (``eclipse-exports run-workers``, ``launchers/run_worker.py``) as one
task; a prefork child that imported Dagster and the code location once runs run after run without a new Python.
What this subclass changes, and why:

- **Broker and results on the product's Redis** (``ECLIPSE_REDIS_URL`` unless ``broker``/``backend`` are set), every
  key under ``eclipse:exports:run-workers:`` (Celery's ``global_keyprefix``), so nothing collides with the request
  stream or the status hashes. The queue (``ECLIPSE_RUN_QUEUE``, default ``eclipse-exports-runs``; deployments sharing
  one Redis need one each) is one Redis list (:func:`~eclipse_exports.queue.keys.run_worker_queue_key`).
- **Its own task** (``launchers/run_task.py``): a delivery claims the run and checks its status before executing,
  so a task delivered twice never executes a run twice; the child refreshes a heartbeat while it runs.
- **Health check.** Upstream answers from the task's result state alone, which stays ``STARTED`` forever when the
  whole worker group is SIGKILLed. Here a run is ``RUNNING`` while its child's heartbeat is fresh; once it expires
  (about 20 s) the run's worker is ``FAILED`` with a readable cause, run monitoring fails the run and Dagster's run
  retries launch it again. A child killed alone fails its task (``WorkerLostError``) and is reported the same way,
  with the signal in an engine event the run-failure sensor reads.
- **No worker, no wait.** A launch with no live worker group consuming the queue (each group's parent refreshes
  an entry every 2 s) waits ``no_worker_grace_seconds`` for one, then fails the run with "no run worker is
  consuming queue …" rather than leaving it ``STARTING`` until the start timeout.
- **Terminate** marks the run ``CANCELING`` and asks the child to stop it (the run ends ``CANCELED``); a run whose
  task no worker has taken yet is revoked and marked ``CANCELED`` at once. Upstream's ``revoke(terminate=True)``
  sends ``SIGTERM`` to a prefork child, which ignores it, and never marks the run canceled.
- **Resume** uses the same task (upstream's resume task takes an argument its launcher does not pass).
"""

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import redis
from celery.result import AsyncResult
from dagster import DagsterRun, DagsterRunStatus, Field, IntSource, Noneable, StringSource
from dagster._core.events import EngineEventData
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, ResumeRunContext, WorkerStatus
from dagster._serdes import ConfigurableClassData
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_RUN_PRIORITY_TAG, DAGSTER_CELERY_TASK_ID_TAG

from eclipse_exports.config import Settings, known_secrets, redact
from eclipse_exports.launchers.run_task import register_run_task
from eclipse_exports.queue.keys import RUN_WORKER_PREFIX
from eclipse_exports.queue.run_workers import RunWorkerRegistry

DEFAULT_QUEUE = "eclipse-exports-runs"
# Celery settings the run workers need whatever the instance's config_source says (it may add or override others).
CELERY_SETTINGS: dict[str, Any] = {
    "worker_prefetch_multiplier": 1,  # a child takes one run at a time; the rest wait in Redis for any worker
    "task_acks_late": True,
    "task_track_started": True,
    "broker_connection_retry_on_startup": True,
    # A run may take hours; a task unacknowledged for longer is delivered again (and refused by its claim).
    "broker_transport_options": {"global_keyprefix": RUN_WORKER_PREFIX, "visibility_timeout": 6 * 3600},
    "result_backend_transport_options": {"global_keyprefix": RUN_WORKER_PREFIX},
    "result_expires": 3 * 24 * 3600,
    # A child is recycled after this many runs or this much resident memory (KiB), whichever comes first.
    "worker_max_tasks_per_child": 500,
    "worker_max_memory_per_child": 700_000,
    "worker_hijack_root_logger": False,
    # Keep a child's stdout/stderr real file descriptors: Dagster captures a run's output there (compute logs);
    # Celery's redirect to its logger would leave the captured files empty.
    "worker_redirect_stdouts": False,
    "worker_send_task_events": False,
    "task_send_sent_event": False,
}
_WORKER_LOST = re.compile(r"signal (\d+) \((\w+)\)")


class CeleryRunWorkerLauncher(CeleryRunLauncher):
    """Launches each run as one task on the run workers' queue; see the module docstring for what differs from
    ``CeleryRunLauncher``. Config (``dagster.yaml``): ``default_queue``, ``broker``, ``backend``, ``include``,
    ``config_source`` as upstream, plus ``no_worker_grace_seconds``."""

    def __init__(self, default_queue: str | None = None, broker: str | None = None, backend: str | None = None,
                 include: list[str] | None = None, config_source: dict | None = None,
                 no_worker_grace_seconds: int = 30, inst_data: ConfigurableClassData | None = None) -> None:
        redis_url = Settings.from_env().redis_url
        self.no_worker_grace_seconds = no_worker_grace_seconds
        settings = {**CELERY_SETTINGS, **(config_source or {})}
        broker = broker or redis_url
        default_queue = default_queue or os.environ.get("ECLIPSE_RUN_QUEUE") or DEFAULT_QUEUE
        super().__init__(default_queue=default_queue, broker=broker, backend=backend or broker, include=include,
                         config_source=settings, inst_data=inst_data)
        self.run_task = register_run_task(self.celery)
        self._registry: RunWorkerRegistry | None = None

    @classmethod
    def config_type(cls) -> dict:
        schema = dict(super().config_type())
        schema["default_queue"] = Field(Noneable(StringSource), is_required=False, default_value=None,
                                        description="The Celery queue runs go to unless tagged dagster-celery/queue "
                                                    "[default: ECLIPSE_RUN_QUEUE, else eclipse-exports-runs].")
        schema["backend"] = Field(Noneable(StringSource), is_required=False, default_value=None,
                                  description="Celery result backend URL; default: the broker's.")
        schema["no_worker_grace_seconds"] = Field(
            IntSource, is_required=False, default_value=30,
            description="How long a launch waits for a live run worker before it fails the run.")
        return schema

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)

    @property
    def registry(self) -> RunWorkerRegistry:
        """The run workers' record on the broker's Redis (opened on first use)."""
        if self._registry is None:
            self._registry = RunWorkerRegistry(redis.Redis.from_url(self.broker, socket_timeout=10,
                                                                    socket_connect_timeout=5))
        return self._registry

    def queue_of(self, run: DagsterRun) -> str:
        """The queue ``run`` goes to: its ``dagster-celery/queue`` tag, else the default queue."""
        return run.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue)

    def wait_for_worker(self, run: DagsterRun, queue: str) -> None:
        """Return once a live worker group consumes ``queue``; when none does within ``no_worker_grace_seconds``,
        report why on ``run`` (an engine event the run-failure sensor reads) and raise ``RuntimeError``."""
        deadline = time.monotonic() + self.no_worker_grace_seconds
        while not self.registry.live_nodes(queue):
            if time.monotonic() >= deadline:
                cause = (f"no run worker is consuming queue {queue} (waited {self.no_worker_grace_seconds} s): "
                         "start `eclipse-exports run-workers` (the run command starts them itself)")
                self._instance.report_engine_event(f"Run not launched: {cause}.", run, cls=self.__class__)
                raise RuntimeError(cause)
            time.sleep(0.5)

    def _send(self, run: DagsterRun, attempt: int) -> None:
        queue = self.queue_of(run)
        self.wait_for_worker(run, queue)
        try:
            priority = int(run.tags.get(DAGSTER_CELERY_RUN_PRIORITY_TAG, 0))
        except ValueError:
            priority = 0
        result = self.run_task.apply_async(kwargs={"run_id": run.run_id, "attempt": attempt}, queue=queue,
                                           routing_key=queue, priority=priority)
        self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_TASK_ID_TAG: result.task_id})
        self._instance.report_engine_event(
            "Run handed to the Celery run workers.", run,
            EngineEventData({"Celery task id": result.task_id, "Celery queue": queue, "Attempt": str(attempt)}),
            cls=self.__class__)

    def launch_run(self, context: LaunchRunContext) -> None:
        self._send(context.dagster_run, attempt=0)

    @property
    def supports_resume_run(self) -> bool:
        return True

    def resume_run(self, context: ResumeRunContext) -> None:
        self._send(context.dagster_run, attempt=max(1, context.resume_attempt_number or 1))

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        self.registry.request_cancel(run_id)
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if self.registry.run_beat(run_id) is None and (task_id is None or self._result(task_id).state == "PENDING"):
            if task_id:
                self._result(task_id).revoke()
            latest = self._instance.get_run_by_id(run_id)
            if latest is not None and latest.status == DagsterRunStatus.CANCELING:
                self._instance.report_run_canceled(latest, "Run canceled before a run worker started it.")
        return True

    def _result(self, task_id: str) -> AsyncResult:
        return self.celery.AsyncResult(task_id)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """``RUNNING`` while the run's child reports (heartbeat), or while its task is ``STARTED`` on a worker group
        that still reports; ``SUCCESS`` once its task succeeded; else ``FAILED`` with the cause: the child died
        (the signal), or the whole worker group stopped reporting."""
        beat = self.registry.run_beat(run.run_id)
        if beat is not None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(beat.pid))
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        result = self._result(task_id) if task_id else None
        state = result.state if result is not None else "UNKNOWN"
        if state == "SUCCESS":
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        if state == "FAILURE":
            cause = redact(str(result.result), known_secrets())
            if match := _WORKER_LOST.search(cause):
                # The run-failure sensor reads the signal from this event (sensors/run_failures.py).
                self._instance.report_engine_event(
                    f"Run execution process for {run.run_id} was terminated by signal {match.group(1)} "
                    f"({match.group(2)}).", run, cls=self.__class__)
            return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker's task failed: {cause}")
        claimed = self.registry.claimed_by(run.run_id)
        if state == "STARTED" and claimed in {f"{n.name}|{n.pid}" for n in self.registry.live_nodes()}:
            # The group that took the run still reports: its child's heartbeat lapsed (Redis was away for a
            # while, say), not the worker. A child killed alone fails its task instead.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's heartbeat lapsed; its worker group is alive")
        worker = (claimed or "(unknown)").replace("|", ", parent pid ")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker {worker} stopped reporting: no heartbeat for the run (its worker group died or lost "
            f"Redis); Celery task state {state}")

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        beat = self.registry.run_beat(run.run_id)
        live = ", ".join(n.name for n in self.registry.live_nodes(self.queue_of(run))) or "none"
        state = self._result(task_id).state if task_id else "no task"
        where = f"child pid {beat.pid} on {beat.node}" if beat else "no child reporting"
        return (f"Celery task {task_id or '-'} ({state}) on queue {self.queue_of(run)}: {where}; "
                f"live run workers on the queue: {live}")
