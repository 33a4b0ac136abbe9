"""Trends of a report: the last 12 weeks of four figures, each counted by one grouped query.

The weeks are 7-day spans ending at the report's period end (for a weekly
report, calendar weeks Monday to Monday; the last one is the report's own
week). Each figure has the same definition as its headline card
(:mod:`eclipse_exports.reports.figures`), applied to every week at once:

- **New alerts by severity**: alerts with ``detected_at`` in the week;
- **Open backlog at the week's end**: infringements detected before the
  week's end whose status is open, in review or takedown requested now;
- **Takedown success rate**: completed ÷ (completed + failed) over actions
  with ``completed_at`` in the week;
- **Median takedown time**: median of ``completed_at − created_at`` over the
  week's completed actions.

A row's week is a ``CASE`` over the 12 week starts, grouped in SQL, so
rendering a report never renders (or queries) 12 reports. Only the median
reads rows: the durations, ordered by week, one week in memory at a time.
"""

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from eclipse_exports.reports.queries import OPEN_INFRINGEMENT_STATUSES
from eclipse_exports.source.schema import actions, alerts, infringements

TREND_WEEKS = 12
_BEFORE = -1  # the bucket of rows older than the first week (the backlog carried into it)


class WeekRates:
    """What a week's and a period's figures derive alike from ``alerts_by_severity``, ``actions_completed`` and
    ``actions_failed`` (fields of the dataclass that mixes this in)."""

    alerts_by_severity: dict
    actions_completed: int
    actions_failed: int

    @property
    def alerts_new(self) -> int:
        """New alerts, every severity."""
        return sum(self.alerts_by_severity.values())

    @property
    def takedown_success_rate(self) -> float | None:
        """completed ÷ (completed + failed), 0–1; ``None`` when neither happened."""
        done = self.actions_completed + self.actions_failed
        return self.actions_completed / done if done else None


@dataclass
class TrendPoint(WeekRates):
    """One week of the trends: ``[start, end)``, its counts, and whether it is the report's own week.

    ``alerts_by_severity`` is ``{severity: n}`` (``None`` for no severity);
    ``median_takedown_seconds`` is ``None`` when no action was completed.
    """

    start: datetime
    end: datetime
    current: bool = False
    alerts_by_severity: dict = field(default_factory=dict)
    open_backlog: int = 0
    actions_completed: int = 0
    actions_failed: int = 0
    median_takedown_seconds: float | None = None


def trend_weeks(period_end: datetime, weeks: int = TREND_WEEKS) -> list[TrendPoint]:
    """``weeks`` empty points of 7 days, oldest first, the last ending at ``period_end`` (marked current)."""
    points = [TrendPoint(period_end - timedelta(days=7 * (weeks - i)), period_end - timedelta(days=7 * (weeks - i - 1)))
              for i in range(weeks)]
    points[-1].current = True
    return points


def _week_of(column, points: list[TrendPoint]) -> ColumnElement:
    """The index of the week ``column`` falls in (``-1`` before the first); the caller bounds the end."""
    return case(*((column >= p.start, i) for i, p in reversed(list(enumerate(points)))), else_=_BEFORE)


def _grouped(conn: Connection, column, other, where: ColumnElement, points: list[TrendPoint]) -> list[tuple]:
    """``(week index, other, count)`` rows: one query, grouped on a subquery so both dialects accept it."""
    inner = select(_week_of(column, points).label("week"), other.label("other")).where(where).subquery()
    return conn.execute(select(inner.c.week, inner.c.other, func.count()).group_by(inner.c.week, inner.c.other)).all()


def collect_trends(conn: Connection, workspace_id: str, period_end: datetime,
                   weeks: int = TREND_WEEKS) -> list[TrendPoint]:
    """The ``weeks`` trend points of ``workspace_id`` ending at ``period_end`` (aware), oldest first.

    Four queries, whatever ``weeks`` is. Raises the database's own errors.
    """
    points = trend_weeks(period_end, weeks)
    first = points[0].start
    in_range = and_(alerts.c.workspace_id == workspace_id, alerts.c.detected_at >= first,
                    alerts.c.detected_at < period_end)
    for week, severity, n in _grouped(conn, alerts.c.detected_at, alerts.c.severity, in_range, points):
        points[week].alerts_by_severity[severity] = n

    backlog = and_(infringements.c.workspace_id == workspace_id, infringements.c.detected_at < period_end,
                   infringements.c.status.in_(OPEN_INFRINGEMENT_STATUSES))
    opened = dict.fromkeys(range(_BEFORE, weeks), 0)
    for week, _status, n in _grouped(conn, infringements.c.detected_at, infringements.c.status, backlog, points):
        opened[week] += n
    running = opened[_BEFORE]
    for i, point in enumerate(points):
        running += opened[i]
        point.open_backlog = running

    finished = and_(actions.c.workspace_id == workspace_id, actions.c.status.in_(("completed", "failed")),
                    actions.c.completed_at >= first, actions.c.completed_at < period_end)
    for week, status, n in _grouped(conn, actions.c.completed_at, actions.c.status, finished, points):
        if status == "completed":
            points[week].actions_completed = n
        else:
            points[week].actions_failed = n

    _medians(conn, workspace_id, points)
    return points


def _medians(conn: Connection, workspace_id: str, points: list[TrendPoint]) -> None:
    week = _week_of(actions.c.completed_at, points).label("week")
    query = (select(week, actions.c.created_at, actions.c.completed_at)
             .where(actions.c.workspace_id == workspace_id, actions.c.status == "completed",
                    actions.c.completed_at >= points[0].start, actions.c.completed_at < points[-1].end,
                    actions.c.created_at.is_not(None))
             .order_by(week).execution_options(yield_per=2_000))
    current, durations = None, []
    for index, created, done in conn.execute(query):
        if index != current:
            if durations:
                points[current].median_takedown_seconds = statistics.median(durations)
            current, durations = index, []
        durations.append((done - created).total_seconds())  # both naive (SQLite) or both aware: one column type
    if durations:
        points[current].median_takedown_seconds = statistics.median(durations)
