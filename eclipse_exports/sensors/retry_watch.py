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

The retry daemon can also pass a failure by without a word: it reads new run
failure events every 5 s, then the runs they belong to, and a run still
``STARTED`` is not retried. The run monitoring stores the failure event before
it marks the run failed (``DagsterInstance.handle_new_event``), so a read in
between (SQLite storage waiting on a lock on a busy machine) skips that run
for good while its tag says it will retry (seen three times in CI). A job whose
failed run has had no retry :data:`REPORT_AGAIN_AFTER_SECONDS` after this
sensor first saw it waiting gets its run's failure reported again (a second
run failure event, message :data:`REPORTED_AGAIN`), which the retry daemon
then reads with the run failed, and launches the retry as it should have. A
job still without a retry :data:`RETRY_GRACE_SECONDS` after the first sighting
is failed with that cause. The first sightings and the reports made live in
the sensor's cursor, so a daemon that was down for a while still has the grace
to catch up after it restarts.
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
from eclipse_exports.sensors.run_failures import (
    REPORTED_AGAIN,
    WILL_RETRY_TAG,
    recent_engine_messages,
    worker_death_cause,
)

# Dagster's own tag (dagster._core.storage.tags.AUTO_RETRY_RUN_ID_TAG): the failed run's retry.
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
_WAITING = frozenset({DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING})
RETRY_GRACE_SECONDS = 300.0
"""How long a job may wait for a retry that Dagster says will come but has not launched (its daemon retries
within seconds: its event-log consumer reads new failures every 5 s)."""
REPORT_AGAIN_AFTER_SECONDS = 60.0
"""How long a job waits for that retry before its run's failure is reported again for the retry daemon."""


@dataclass
class RetryWatchOutcome:
    """What one pass found: jobs whose retry has started (``handed_over``), jobs failed because their retry was
    abandoned (``failed``: job id → cause) and jobs still waiting (``waiting``); ``first_seen`` maps each job
    still waiting for a retry Dagster has not launched to when a pass first saw it (epoch seconds), and
    ``reported_again`` lists those of them whose run's failure a pass reported again (``reporting_now`` the
    ones this pass did)."""

    handed_over: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    reported_again: set[str] = field(default_factory=set)
    reporting_now: list[str] = field(default_factory=list)

    def cursor(self) -> str:
        """The sensor cursor for the next pass: ``{"firstSeen": {job id: epoch s}, "reportedAgain": [job id]}``."""
        return json.dumps({"firstSeen": self.first_seen,
                           "reportedAgain": sorted(self.reported_again & self.first_seen.keys())}, sort_keys=True)


def read_cursor(cursor: str | None) -> tuple[dict[str, float], set[str]]:
    """``(first sightings, jobs reported again)`` from a cursor :meth:`RetryWatchOutcome.cursor` wrote; a flat
    ``{job id: epoch s}`` of the previous version is read as first sightings. An unreadable cursor (edited by
    hand, say) reads as empty: the grace starts again."""
    try:
        data = json.loads(cursor or "{}")
        if "firstSeen" not in data:
            return {str(k): float(v) for k, v in data.items()}, set()
        return ({str(k): float(v) for k, v in data["firstSeen"].items()},
                {str(job) for job in data.get("reportedAgain", [])})
    except (ValueError, TypeError, AttributeError):
        return {}, set()


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
    failures = instance.get_records_for_run(failed.run_id, of_type=DagsterEventType.RUN_FAILURE, limit=5,
                                            ascending=False).records
    message = next((m for r in failures if not (m := r.event_log_entry.message or "").startswith(REPORTED_AGAIN)),
                   "")
    died = worker_death_cause(message, recent_engine_messages(instance, failed.run_id))
    return f"{why}; {died or message or 'the export run failed'}"


def watch_awaited_retries(instance: DagsterInstance, store: JobStatusStore, first_seen: dict[str, float] | None = None,
                          now: float | None = None, grace: float = RETRY_GRACE_SECONDS,
                          reported_again: set[str] | None = None,
                          report_again_after: float = REPORT_AGAIN_AFTER_SECONDS) -> RetryWatchOutcome:
    """One pass over the jobs awaiting a run retry; fails those whose retry Dagster abandoned.

    A job is handed over (no longer watched) once it left ``queued`` or its retry's run has started: from then
    on the run reports for itself and ``export_run_failure_sensor`` sees its failure. It is failed
    (``export_failed``, with the dead worker's cause) when the failed run's ``dagster/will_retry`` turned
    ``false`` with no retry launched, no retry was launched ``grace`` seconds after ``first_seen`` (the
    previous pass's :attr:`RetryWatchOutcome.first_seen`) says a pass first saw it waiting, the retry's run was
    canceled, or the run is gone. A job with no retry ``report_again_after`` seconds after its first sighting
    and not in ``reported_again`` (the previous pass's) has its run's failure reported again, once, for the
    retry daemon to read. ``now`` is epoch seconds (default: the clock). Raises Redis and Dagster storage
    errors (the sensor's next tick tries again).
    """
    outcome, seen, now = RetryWatchOutcome(), dict(first_seen or {}), time.time() if now is None else now
    outcome.reported_again = set(reported_again or ())
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
                    again = ", even reported a second time" if job_id in outcome.reported_again else ""
                    cause = _abandoned_cause(instance, failed, f"Dagster launched no retry of its run in "
                                                               f"{grace / 60:g} minutes (its retry daemon passed "
                                                               f"the failure by{again})")
                elif now - since >= report_again_after and job_id not in outcome.reported_again:
                    instance.report_run_failed(failed, f"{REPORTED_AGAIN}: Dagster's run retries launched no "
                                                       f"retry of this failed run in {now - since:.0f} s (their "
                                                       "daemon read the run before it was marked failed); this "
                                                       "second failure event lets them launch it.")
                    outcome.reported_again.add(job_id)
                    outcome.reporting_now.append(job_id)
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
    description="Fails an export job queued for a Dagster run retry when Dagster abandons the retry; reports "
                "the run's failure again when no retry came in a minute, and fails the job after 5 minutes.",
)
def export_retry_watch_sensor(context: SensorEvaluationContext, redis: RedisResource) -> SkipReason:
    first_seen, reported_again = read_cursor(context.cursor)
    outcome = watch_awaited_retries(context.instance, redis.get_status_store(), first_seen,
                                    reported_again=reported_again)
    context.update_cursor(outcome.cursor())
    for job_id in outcome.reporting_now:
        context.log.warning(f"{job_id}: no retry of its failed run yet; its failure was reported again for "
                            "Dagster's retry daemon")
    for job_id, cause in outcome.failed.items():
        context.log.warning(f"{job_id}: failed, {cause}")
    return SkipReason(f"{len(outcome.waiting)} job(s) waiting for a run retry, {len(outcome.handed_over)} handed "
                      f"over to their retry, {len(outcome.failed)} failed (retry abandoned)")
