"""``WatchedRunLauncher``: Dagster's ``DefaultRunLauncher`` plus the run-worker health check it lacks.

With the default launcher, each run is a child process of the code server on the same host. Dagster's run
monitoring fails a run that never started (``start_timeout_seconds``) but cannot see a *started* run whose
worker is gone: when the whole deployment dies at once (``kill -9`` of the run command's process group, a
host crash), the code server that would have reported the death dies with it, and the run stays ``STARTED``
forever, its job ``running``. This launcher answers run monitoring's question "is the worker alive?" from the
worker's own pid, which the worker records in the run's "Started process for run (pid: N)" event: the
process must still exist and must have started before that event (a recycled pid is a different process).
A dead worker's run is then failed by run monitoring, and Dagster's run retries launch it again
(``instance/dagster.yaml``).

The pid is only meaningful on the host that runs the workers, so this launcher is for single-host
deployments: ``eclipse-exports dev`` and ``deploy/`` on one Linux host. Kubernetes uses ``K8sRunLauncher``,
which has a health check of its own.
"""

import psutil
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

# A process's start time is known to ~10 ms (clock ticks); allow for it and for the event's own delay.
START_SLACK_SECONDS = 2.0
_STARTED_PREFIX = "Started process for run (pid:"


class WatchedRunLauncher(DefaultRunLauncher):
    """Launches runs as ``DefaultRunLauncher`` does and tells run monitoring whether each worker is alive."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """``RUNNING`` while the run's worker process exists, ``FAILED`` once it is gone.

        ``UNKNOWN`` (run monitoring then leaves the run alone) when the worker has not recorded its pid yet.
        """
        found = self._instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT,
                                                   limit=50).records
        for record in found:
            entry = record.event_log_entry
            if not (entry.message or "").startswith(_STARTED_PREFIX):
                continue
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            pid_value = data.metadata.get("pid") if data else None
            if pid_value is None:
                continue
            pid = int(str(pid_value.value))
            if _alive_since(pid, entry.timestamp):
                return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
            return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker (pid {pid}) is no longer running",
                                        run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker has not reported its pid yet")


def _alive_since(pid: int, started_by: float) -> bool:
    """Whether process ``pid`` is running (not a zombie) and was started by ``started_by`` (epoch seconds)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_by + START_SLACK_SECONDS
    except psutil.Error:
        return False
