"""``export_retry_watch_sensor``: a job queued for a Dagster run retry never waits for one that will not come.

When a run's worker dies, ``export_run_failure_sensor`` puts its job back to
``queued`` because the run's ``dagster/will_retry`` tag says Dagster's run
retries will launch it again. The retry daemon can still give up afterwards
(it could not reach the code location while the deployment was restarting,
or the retry was canceled in the UI) and then only flips the failed run's tag
to ``false``: no new failure event, so no sensor would ever hear of it and the
job would stay ``queued`` for good. This sensor follows every job recorded as
awaiting a retry (``eclipse:exports:awaiting-retry``) until the retry's run has
started, and fails the job with the cause when the retry is abandoned.

The retry daemon can also pass a failure by without a word (seen once in CI:
it read the run before its tags said it would retry, and launched nothing;
the tag stays ``true``). A job whose failed run has had no retry for
:data:`RETRY_GRACE_SECONDS` since this sensor first saw it waiting is failed
with that cause too; the first sightings live in the sensor's cursor, so a
daemon that was down for a while still has the grace to catch up after it
restarts.
"""

import json
import time
from dataclasses import dataclass, field

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from eclipse_exports.assets.exports import ERROR_CODE_TAG
from eclipse_exports.models import ErrorCode, JobStatus, utc_now
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors.run_failures import WILL_RETRY_TAG, recent_engine_messages, worker_death_cause

# Dagster's own tag (dagster._core.storage.tags.AUTO_RETRY_RUN_ID_TAG): the failed run's retry.
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
_WAITING = frozenset({DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING})
RETRY_GRACE_SECONDS = 300.0
"""How long a job may wait for a retry that Dagster says will come but has not launched (its daemon retries
within seconds: its event-log consumer reads new failures every 5 s)."""


@dataclass
class RetryWatchOutcome:
    """What one pass found: jobs whose retry has started (``handed_over``), jobs failed because their retry was
    abandoned (``failed``: job id → cause) and jobs still waiting (``waiting``); ``first_seen`` maps each job
    still waiting for a retry Dagster has not launched to when a pass first saw it (epoch seconds)."""

    handed_over: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)


def latest_retry(instance: DagsterInstance, run: DagsterRun) -> DagsterRun:
    """The newest run in ``run``'s chain of automatic retries (``run`` itself when none was launched)."""
    seen = {run.run_id}
    while (child_id := run.tags.get(AUTO_RETRY_RUN_ID_TAG)) and child_id not in seen:
        child = instance.get_run_by_id(child_id)
        if child is None:
            break
        seen.add(child_id)
        run = child
    return run


def _abandoned_cause(instance: DagsterInstance, failed: DagsterRun, why: str) -> str:
    failures = instance.get_records_for_run(failed.run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1,
                                            ascending=False).records
    message = failures[0].event_log_entry.message or "" if failures else ""
    died = worker_death_cause(message, recent_engine_messages(instance, failed.run_id))
    return f"{why}; {died or message or 'the export run failed'}"


def watch_awaited_retries(instance: DagsterInstance, store: JobStatusStore, first_seen: dict[str, float] | None = None,
                          now: float | None = None, grace: float = RETRY_GRACE_SECONDS) -> RetryWatchOutcome:
    """One pass over the jobs awaiting a run retry; fails those whose retry Dagster abandoned.

    A job is handed over (no longer watched) once it left ``queued`` or its retry's run has started: from then
    on the run reports for itself and ``export_run_failure_sensor`` sees its failure. It is failed
    (``export_failed``, with the dead worker's cause) when the failed run's ``dagster/will_retry`` turned
    ``false`` with no retry launched, no retry was launched ``grace`` seconds after ``first_seen`` (the
    previous pass's :attr:`RetryWatchOutcome.first_seen`) says a pass first saw it waiting, the retry's run was
    canceled, or the run is gone. ``now`` is epoch seconds (default: the clock). Raises Redis and Dagster
    storage errors (the sensor's next tick tries again).
    """
    outcome, seen, now = RetryWatchOutcome(), dict(first_seen or {}), time.time() if now is None else now
    for job_id, failed_run_id in store.awaiting_retry().items():
        if store.status(job_id) != JobStatus.QUEUED:
            store.retry_settled(job_id)
            outcome.handed_over.append(job_id)
            continue
        failed = instance.get_run_by_id(failed_run_id)
        cause = None
        if failed is None:
            cause = f"its failed run {failed_run_id} no longer exists, so Dagster will not retry it"
        else:
            latest = latest_retry(instance, failed)
            if latest.run_id == failed.run_id:
                since = outcome.first_seen[job_id] = seen.get(job_id, now)
                if failed.tags.get(WILL_RETRY_TAG) == "false":
                    cause = _abandoned_cause(instance, failed, "Dagster could not launch the retry of its run "
                                                               "(see the run's events in the Dagster UI)")
                elif now - since >= grace:
                    cause = _abandoned_cause(instance, failed, f"Dagster launched no retry of its run in "
                                                               f"{grace / 60:g} minutes (its retry daemon passed "
                                                               "the failure by)")
            elif latest.status == DagsterRunStatus.CANCELED:
                cause = _abandoned_cause(instance, failed, f"the retry of its run ({latest.run_id}) was canceled")
            elif latest.status not in _WAITING:
                store.retry_settled(job_id)
                outcome.handed_over.append(job_id)
                continue
        if cause is None:
            outcome.waiting.append(job_id)
            continue
        outcome.first_seen.pop(job_id, None)
        store.failed(job_id, ErrorCode.EXPORT_FAILED, cause, utc_now(), failed_run_id)
        if failed is not None:
            instance.add_run_tags(failed_run_id, {ERROR_CODE_TAG: ErrorCode.EXPORT_FAILED.value})
        store.retry_settled(job_id)
        outcome.failed[job_id] = cause
    return outcome


@sensor(
    name="export_retry_watch_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Fails an export job queued for a Dagster run retry when Dagster abandons the retry or launches "
                "none within 5 minutes.",
)
def export_retry_watch_sensor(context: SensorEvaluationContext, redis: RedisResource) -> SkipReason:
    try:
        first_seen = {str(k): float(v) for k, v in json.loads(context.cursor or "{}").items()}
    except (ValueError, TypeError, AttributeError):
        first_seen = {}  # a cursor of an older version, or edited: the grace starts again
    outcome = watch_awaited_retries(context.instance, redis.get_status_store(), first_seen)
    context.update_cursor(json.dumps(outcome.first_seen, sort_keys=True))
    for job_id, cause in outcome.failed.items():
        context.log.warning(f"{job_id}: failed, {cause}")
    return SkipReason(f"{len(outcome.waiting)} job(s) waiting for a run retry, {len(outcome.handed_over)} handed "
                      f"over to their retry, {len(outcome.failed)} failed (retry abandoned)")
