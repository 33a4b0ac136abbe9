"""A guard both schedules call first: a tick that is not "now" and not a missed tick of this cron is skipped.

Dagster 1.13 (its issue 13329): when a schedule's cron changes, the daemon
evaluates, at once, the latest tick the *new* cron would have had since the
last tick it evaluated under the old one; hourly changed to ``*/5 * * * *``
at 12:12 launches a run for 12:10, when nothing was due, and a changed
report cron can launch last week's reports again. A tick is honoured when:

- it is evaluated within :data:`CATCH_UP_TOLERANCE` of its scheduled time
  (the daemon's normal pace), or
- it is exactly the next time of the current cron after the last tick this
  schedule launched a run for (a tick missed while the daemon was down, say
  over Monday 06:00, still runs).

Anything else is a catch-up tick made up by a cron change and is skipped
with the reason in the tick's log. ``now`` is Dagster's own clock
(``dagster._time``), which Dagster's test utilities can freeze.
"""

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, RunsFilter, SkipReason
from dagster._time import get_current_datetime
from dagster._utils.schedules import get_next_cron_tick, is_valid_cron_string

CATCH_UP_TOLERANCE = timedelta(seconds=60)
SCHEDULE_NAME_TAG, SCHEDULED_TIME_TAG = "dagster/schedule_name", ".dagster/scheduled_execution_time"


def checked_cron(variable: str, cron: str) -> str:
    """``cron`` when Dagster accepts it; else ``ValueError`` naming the setting (the code location does not load)."""
    if not is_valid_cron_string(cron):
        raise ValueError(f"{variable}={cron!r} is not a cron string Dagster accepts (five fields, e.g. '0 6 * * 1')")
    return cron


def last_launched_tick(instance: DagsterInstance, schedule_name: str) -> datetime | None:
    """The scheduled time of the latest run schedule ``schedule_name`` launched; ``None`` when it launched none."""
    runs = instance.get_runs(RunsFilter(tags={SCHEDULE_NAME_TAG: schedule_name}), limit=1)
    stamp = runs[0].tags.get(SCHEDULED_TIME_TAG) if runs else None
    return datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None


def catch_up_skip(instance: DagsterInstance, schedule_name: str, cron: str, scheduled: datetime,
                  now: datetime | None = None) -> SkipReason | None:
    """``None`` when the tick at ``scheduled`` is due now (or a missed tick of ``cron``); else the reason to skip.

    ``now`` defaults to Dagster's current time.
    """
    now = (now or get_current_datetime()).astimezone(UTC)
    scheduled = scheduled.astimezone(UTC)
    if now - scheduled <= CATCH_UP_TOLERANCE:
        return None
    last = last_launched_tick(instance, schedule_name)
    if last is not None and last < scheduled and \
            get_next_cron_tick(cron, last + timedelta(seconds=1), "UTC").astimezone(UTC) == scheduled:
        return None
    return SkipReason(
        f"catch-up tick skipped: the tick for {scheduled:%Y-%m-%d %H:%M} UTC is evaluated at {now:%Y-%m-%d %H:%M:%S}"
        f" UTC and is not the next time of '{cron}' after the last tick that launched a run "
        f"({'none' if last is None else f'{last:%Y-%m-%d %H:%M}'}); a cron change makes such ticks up "
        "(Dagster issue 13329). The next tick runs as usual.")
