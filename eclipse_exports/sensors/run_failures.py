"""``export_run_failure_sensor``: a failed run's job ends ``failed`` with a readable cause and leaves nothing behind.

The export asset records its own failures; this catches the rest (a run that
crashed before the asset's error handling, a worker killed mid-export, a run
that failed to start). For every failed export run it also aborts the job's
incomplete multipart upload and deletes a file the run may have completed
(:func:`eclipse_exports.retention.leftovers.discard_job_files`), unless another run of
the job has taken over. It never overwrites a job that already reached a
terminal status. A killed worker's cause names the signal, from the code
server's engine event ("terminated by signal 9"), instead of Dagster's
generic "marked as failed from outside the execution context".

A run that Dagster's run retries will launch again (its ``dagster/will_retry``
tag, set when the run failed: a worker that died or never started, not an
export error) does not fail its job: the job goes back to ``queued`` and the
retry's run takes it from there (``export_retry_watch_sensor`` fails it if
Dagster abandons the retry).
"""

import re

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
)

from eclipse_exports.assets.exports import ERROR_CODE_TAG, RUN_TAG_PREFIX, export_request_of_run
from eclipse_exports.config import known_secrets, redact
from eclipse_exports.exports.job_file import job_file_key
from eclipse_exports.models import ErrorCode, utc_now
from eclipse_exports.queue.status import TERMINAL_STATUSES, JobStatusStore
from eclipse_exports.resources import ExportStorageResource, RedisResource
from eclipse_exports.retention.leftovers import discard_job_files

_SIGNAL = re.compile(r"terminated by signal (\d+) \((\w+)\)")
_EXIT_CODE = re.compile(r"unexpectedly exited with code (-?\d+)")
_NOTHING_KEPT = "its partial file was removed. Request the export again."
_NO_WORKER = re.compile(r"no run worker is consuming queue \S+")  # launchers/celery.py
_START_TIMEOUT = re.compile(r"taking longer than (\d+) seconds to start")
# Dagster's own tag (dagster._core.storage.tags.WILL_RETRY_TAG), set on a failed run when run retries are on.
WILL_RETRY_TAG = "dagster/will_retry"
REPORTED_AGAIN = "Reported again by export_retry_watch_sensor"
"""How a run failure event that ``export_retry_watch_sensor`` reported a second time, so that Dagster's retry
daemon reads the failure it passed by, begins; it is not a new failure (sensors/retry_watch.py)."""


def worker_death_cause(failure_message: str, engine_messages: list[str]) -> str | None:
    """A user's sentence for a run whose worker process died, or ``None`` when it did not.

    ``failure_message`` is the run failure event's text; ``engine_messages`` the
    run's recent engine events, newest first (the code server reports the
    worker's exit there: "…terminated by signal 9 (SIGKILL)" or "…exited with code N").
    """
    for message in engine_messages:
        if match := _NO_WORKER.search(message):
            return f"the export run could not start: {match.group(0)}"
        if match := _SIGNAL.search(message):
            number, name = match.groups()
            why = " — it was killed, often because the machine ran out of memory" if number == "9" else ""
            return f"the export worker stopped unexpectedly (signal {number}, {name}){why}; {_NOTHING_KEPT}"
        if match := _EXIT_CODE.search(message):
            return f"the export worker stopped unexpectedly (exit code {match.group(1)}); {_NOTHING_KEPT}"
    if match := _START_TIMEOUT.search(failure_message):
        return (f"the export run could not start: its worker was not running after {match.group(1)} s (the export "
                f"service was restarting or overloaded), and the retries Dagster allows were used up; "
                f"{_NOTHING_KEPT}")
    if "Detected run worker status" in failure_message:
        return f"the export worker stopped responding and Dagster's run monitoring gave up on it; {_NOTHING_KEPT}"
    if "from outside the execution context" in failure_message:
        return f"the export run was stopped from outside (its worker is gone); {_NOTHING_KEPT}"
    return None


def recent_engine_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    """The texts of the run's 20 newest engine events, newest first (where the code server reports a worker's exit)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20,
                                           ascending=False).records
    return [r.event_log_entry.message or "" for r in records]


def failure_cause(context: RunFailureSensorContext) -> str:
    """The most specific error text of a failed run: its step failures, a dead worker's signal, else the
    run failure event."""
    causes = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        chain = []
        while error is not None:
            chain.append(error.message.strip())
            error = error.cause or error.context
        causes.append(": ".join(chain) if chain else event.message or "step failed")
    if not causes:
        message = context.failure_event.message or ""
        died = worker_death_cause(message, recent_engine_messages(context.instance, context.dagster_run.run_id))
        causes.append(died or message or "run failed")
    return redact("; ".join(causes), known_secrets())


def discard_leftovers(context: RunStatusSensorContext, job_id: str, redis: RedisResource,
                      storage: ExportStorageResource) -> bool:
    """Remove the ended run's incomplete upload and any file it completed; ``False`` when the job is left alone
    (completed, or another run of it took over), so its status must not change either."""
    run = context.dagster_run
    workspace_id = run.tags.get(f"{RUN_TAG_PREFIX}workspace_id") or run.tags.get("dagster/partition")
    files = storage.get_storage()
    try:
        request, key_time = export_request_of_run(run, context.instance)
        expected_key = job_file_key(files, request, key_time) if key_time else None
    except (KeyError, ValueError):
        expected_key = None
    if not workspace_id:
        return True
    try:
        discarded = discard_job_files(files, redis.get_client(), job_id, workspace_id, run.run_id, expected_key)
        if discarded.skipped:
            context.log.info(f"{job_id}: left alone, {discarded.skipped}")
            return False
        if discarded.uploads_aborted or discarded.files_deleted:
            context.log.info(f"{job_id}: aborted {discarded.uploads_aborted} incomplete upload(s), deleted "
                             f"{discarded.files_deleted} file(s) of the ended run")
    except Exception as exc:  # noqa: BLE001 - the hourly clean-up removes what is left; the status still matters
        context.log.warning(f"{job_id}: leftovers not removed now (the clean-up will): "
                            f"{redact(str(exc), known_secrets())}")
    return True


def unfinished_export_job(context: RunStatusSensorContext, redis: RedisResource,
                          storage: ExportStorageResource) -> tuple[JobStatusStore, str] | None:
    """``(status store, job id)`` of the export job of the context's run once its leftovers are gone and while
    the job has no final status; ``None`` for a run of no request, leftovers not yet removable, or a job
    already ended. Shared by the run-failure and run-canceled sensors."""
    job_id = context.dagster_run.tags.get(f"{RUN_TAG_PREFIX}job_id")
    if not job_id or not discard_leftovers(context, job_id, redis, storage):
        return None
    store = redis.get_status_store()
    if store.status(job_id) in TERMINAL_STATUSES:
        return None
    return store, job_id


def fail_export_job(context: RunStatusSensorContext, store: JobStatusStore, job_id: str, cause: str) -> None:
    """Mark ``job_id`` failed (``export_failed``) with ``cause`` and tag the context's run with the error code."""
    run_id = context.dagster_run.run_id
    store.failed(job_id, ErrorCode.EXPORT_FAILED, cause, utc_now(), run_id)
    context.instance.add_run_tags(run_id, {ERROR_CODE_TAG: ErrorCode.EXPORT_FAILED.value})


@run_failure_sensor(
    name="export_run_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Marks the export job of a failed run as failed (errorCode export_failed) with the cause, "
                "and removes its incomplete upload or partial file.",
)
def export_run_failure_sensor(context: RunFailureSensorContext, redis: RedisResource,
                              storage: ExportStorageResource) -> None:
    run = context.dagster_run
    if (context.failure_event.message or "").startswith(REPORTED_AGAIN):
        return  # the run's first failure event put its job back to queued already
    unfinished = unfinished_export_job(context, redis, storage)
    if unfinished is None:
        return
    store, job_id = unfinished
    latest = context.instance.get_run_by_id(run.run_id) or run  # the tag is added as the failure is stored
    if latest.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"{job_id}: run {run.run_id} failed and Dagster will retry it; the job is queued again")
        store.requeued(job_id, run.run_id)
        return
    fail_export_job(context, store, job_id, failure_cause(context))
