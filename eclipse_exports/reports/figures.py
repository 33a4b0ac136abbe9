"""The figures of an executive report, read from the source database for one workspace and one period.

Every figure is defined once, here, and the page states the same definitions
(``templates/executive_report.html``). A period is ``[start, end)`` in UTC;
the *previous period* is the one of the same length just before it. The
database keeps each row's current status only (no history of changes), so
"resolved" and "open" mean the status when the report is generated.

- **New alerts**: alerts whose ``detected_at`` lies in the period; by
  severity (``None`` counts alerts without one).
- **Alerts resolved**: of those new alerts, the ones whose status is ``resolved``.
- **Infringements opened**: infringements whose ``detected_at`` lies in the
  period; by type.
- **Open infringements at period end**: infringements detected before the
  period's end whose status is ``open``, ``in_review`` or
  ``takedown_requested``; by status. The list of open infringements on the
  page is this same set.
- **Takedown actions completed** / **failed**: actions of every type whose
  status is ``completed`` / ``failed`` and whose ``completed_at`` lies in the
  period. **Success rate** = completed ÷ (completed + failed).
- **Median takedown time**: the median of ``completed_at − created_at`` over
  the completed actions above (those with a ``created_at``).
- **New critical alerts**: new alerts of severity ``critical``.

The briefing's other figures have modules of their own, each collected here
into :class:`ReportData`: 12-week trends (:mod:`~eclipse_exports.reports.history`),
brands at risk (:mod:`~eclipse_exports.reports.brands`), the backlog's ageing
and the open critical alerts (:mod:`~eclipse_exports.reports.ageing`), and the
takedown breakdown (:mod:`~eclipse_exports.reports.takedowns`).

Every query binds the workspace id. Counts are grouped in SQL; only the
durations of one period's completed actions (or first actions) and the capped
lists come back as rows, so memory does not grow with the workspace's history.
"""

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from eclipse_exports.reports.ageing import OLDEST_LISTED, Ageing, collect_ageing
from eclipse_exports.reports.brands import BrandRisk, brands_at_risk
from eclipse_exports.reports.history import TrendPoint, WeekRates, collect_trends
from eclipse_exports.reports.queries import OPEN_INFRINGEMENT_STATUSES, between, counts
from eclipse_exports.reports.takedowns import TakedownBreakdown, collect_takedowns
from eclipse_exports.source.schema import actions, alerts, infringements, workspaces

LIST_LIMIT = OLDEST_LISTED
MAX_CHART_BARS = 62


@dataclass(kw_only=True)
class PeriodFigures(WeekRates):
    """The headline figures of one period (see the module docstring for each definition).

    Breakdowns are ``{value: count}``; ``None`` stands for rows without a value.
    ``median_takedown_seconds`` is ``None`` when no action was completed.
    """

    alerts_by_severity: dict = field(default_factory=dict)
    alerts_resolved: int = 0
    infringements_by_type: dict = field(default_factory=dict)
    open_infringements_by_status: dict = field(default_factory=dict)
    actions_completed: int = 0
    actions_failed: int = 0
    median_takedown_seconds: float | None = None

    @property
    def critical_alerts_new(self) -> int:
        """New alerts of severity ``critical``."""
        return self.alerts_by_severity.get("critical", 0)

    @property
    def infringements_opened(self) -> int:
        """Infringements detected in the period (all types)."""
        return sum(self.infringements_by_type.values())

    @property
    def open_infringement_count(self) -> int:
        """Infringements open at the period's end."""
        return sum(self.open_infringements_by_status.values())



@dataclass
class DayCounts:
    """New alerts of one chart bar: ``[start, end)`` and counts by severity."""

    start: datetime
    end: datetime
    by_severity: dict


@dataclass
class ReportData(PeriodFigures):
    """Everything the report shows: this period's figures, the previous period's, lists and chart data.

    ``alerts_by_status``, ``infringements_by_status`` and ``actions_by_status``
    count the rows the period covers (alerts and infringements detected,
    actions created in it) by current status (:attr:`alert_count` and its
    siblings are their totals); :attr:`row_count` is the rows the page lists.
    ``trends`` are the last 12 weeks (oldest first, the last one this
    period's end), ``brands`` the brands at risk, ``ageing`` the backlog's
    ages with the oldest open infringements and open critical alerts (at most
    ``LIST_LIMIT`` each, oldest first; counts say how many in all), and
    ``takedowns`` the takedown breakdown.
    """

    workspace_id: str
    workspace_name: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    alerts_by_status: dict = field(default_factory=dict)
    infringements_by_status: dict = field(default_factory=dict)
    actions_by_status: dict = field(default_factory=dict)
    alerts_per_bar: list[DayCounts] = field(default_factory=list)
    previous: PeriodFigures | None = None
    trends: list[TrendPoint] = field(default_factory=list)
    brands: list[BrandRisk] = field(default_factory=list)
    ageing: Ageing = field(default_factory=Ageing)
    takedowns: TakedownBreakdown = field(default_factory=TakedownBreakdown)

    @property
    def row_count(self) -> int:
        """The rows the page lists (open critical alerts and the oldest open infringements, each capped at
        ``LIST_LIMIT``).

        Like a data export's, a report's ``rowCount`` counts the rows in the file; the page marks each
        with ``data-row``. The figures it summarizes are :attr:`alert_count` and its siblings.
        """
        return len(self.ageing.critical_open) + len(self.ageing.oldest)

    @property
    def alert_count(self) -> int:
        """Alerts detected in the period."""
        return sum(self.alerts_by_status.values())

    @property
    def infringement_count(self) -> int:
        """Infringements detected in the period."""
        return sum(self.infringements_by_status.values())

    @property
    def action_count(self) -> int:
        """Actions created in the period."""
        return sum(self.actions_by_status.values())

    @property
    def previous_start(self) -> datetime:
        """Start of the previous period (its end is ``period_start``)."""
        return self.period_start - (self.period_end - self.period_start)

    @property
    def is_empty(self) -> bool:
        """Nothing happened in the period: no new alerts or infringements, no action created or finished."""
        return not (self.alerts_new or self.infringements_opened or self.actions_by_status
                    or self.actions_completed or self.actions_failed)


def _durations(conn: Connection, workspace_id: str, start: datetime, end: datetime) -> list[float]:
    query = select(actions.c.created_at, actions.c.completed_at).where(
        actions.c.workspace_id == workspace_id, actions.c.status == "completed",
        between(actions.c.completed_at, start, end), actions.c.created_at.is_not(None))
    return [(done - created).total_seconds() for created, done in conn.execute(query)]  # same type: no as_utc


def period_figures(conn: Connection, workspace_id: str, start: datetime, end: datetime,
                   into: PeriodFigures | None = None, week: TrendPoint | None = None) -> PeriodFigures:
    """The headline figures of ``workspace_id`` for ``[start, end)`` (aware datetimes).

    Fills ``into`` when given (a :class:`ReportData`), else a new :class:`PeriodFigures`. ``week``, the
    trend point of this same span when there is one, gives the figures the trends already counted with the
    same definitions (new alerts by severity, takedowns completed and failed, median takedown time), so they
    are not counted twice.
    """
    figures = into if into is not None else PeriodFigures()
    new_alerts = and_(alerts.c.workspace_id == workspace_id, between(alerts.c.detected_at, start, end))
    figures.alerts_resolved = conn.execute(select(func.count()).where(
        new_alerts, alerts.c.status == "resolved")).scalar_one()
    figures.infringements_by_type = counts(conn, infringements.c.type, and_(
        infringements.c.workspace_id == workspace_id, between(infringements.c.detected_at, start, end)))
    figures.open_infringements_by_status = counts(conn, infringements.c.status, _open_at(workspace_id, end))
    if week is not None and (week.start, week.end) == (start, end):
        figures.alerts_by_severity = dict(week.alerts_by_severity)
        figures.actions_completed, figures.actions_failed = week.actions_completed, week.actions_failed
        figures.median_takedown_seconds = week.median_takedown_seconds
        return figures
    figures.alerts_by_severity = counts(conn, alerts.c.severity, new_alerts)
    finished = counts(conn, actions.c.status, and_(
        actions.c.workspace_id == workspace_id, actions.c.status.in_(("completed", "failed")),
        between(actions.c.completed_at, start, end)))
    figures.actions_completed = finished.get("completed", 0)
    figures.actions_failed = finished.get("failed", 0)
    durations = _durations(conn, workspace_id, start, end)
    figures.median_takedown_seconds = statistics.median(durations) if durations else None
    return figures


def _open_at(workspace_id: str, end: datetime) -> ColumnElement:
    return and_(infringements.c.workspace_id == workspace_id, infringements.c.detected_at < end,
                infringements.c.status.in_(OPEN_INFRINGEMENT_STATUSES))


def chart_bars(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The bars of the alerts chart: one per UTC day, or per 7 days (then more) beyond ``MAX_CHART_BARS`` days."""
    days = max(1, -(-int((end - start).total_seconds()) // 86_400))
    step_days = 1 if days <= MAX_CHART_BARS else 7 if days <= 7 * MAX_CHART_BARS else -(-days // MAX_CHART_BARS)
    bars, moment = [], start
    while moment < end:
        bars.append((moment, min(moment + timedelta(days=step_days), end)))
        moment += timedelta(days=step_days)
    return bars


def _alerts_per_bar(conn: Connection, workspace_id: str, start: datetime, end: datetime) -> list[DayCounts]:
    bars = chart_bars(start, end)
    detected = alerts.c.detected_at
    columns = [func.sum(case((between(detected, a, b), 1), else_=0)) for a, b in bars]
    rows = conn.execute(select(alerts.c.severity, *columns).where(
        alerts.c.workspace_id == workspace_id, between(detected, start, end)).group_by(alerts.c.severity)).all()
    return [DayCounts(a, b, {row[0]: int(row[i + 1] or 0) for row in rows if row[i + 1]})
            for i, (a, b) in enumerate(bars)]


def collect_report(conn: Connection, workspace_id: str, period_start: datetime, period_end: datetime,
                   generated_at: datetime) -> ReportData:
    """Read one workspace's report for ``[period_start, period_end)`` and the period before it.

    Datetimes are aware (UTC). Raises ``LookupError`` when the workspace does not exist.
    """
    name = conn.execute(select(workspaces.c.name).where(workspaces.c.id == workspace_id)).scalar_one_or_none()
    if name is None:
        raise LookupError(f"workspace '{workspace_id}' does not exist")
    data = ReportData(workspace_id, name, period_start, period_end, generated_at)
    data.trends = collect_trends(conn, workspace_id, period_end)
    # A weekly report's week and the one before are the trends' last two points.
    period_figures(conn, workspace_id, period_start, period_end, into=data, week=data.trends[-1])
    data.previous = period_figures(conn, workspace_id, data.previous_start, period_start, week=data.trends[-2])

    new_alerts = and_(alerts.c.workspace_id == workspace_id, between(alerts.c.detected_at, period_start, period_end))
    data.alerts_by_status = counts(conn, alerts.c.status, new_alerts)
    data.infringements_by_status = counts(conn, infringements.c.status, and_(
        infringements.c.workspace_id == workspace_id,
        between(infringements.c.detected_at, period_start, period_end)))
    data.actions_by_status = counts(conn, actions.c.status, and_(
        actions.c.workspace_id == workspace_id, between(actions.c.created_at, period_start, period_end)))
    data.alerts_per_bar = _alerts_per_bar(conn, workspace_id, period_start, period_end)

    data.brands = brands_at_risk(conn, workspace_id, period_start, period_end)
    data.ageing = collect_ageing(conn, workspace_id, period_end)
    data.takedowns = collect_takedowns(conn, workspace_id, period_start, period_end)
    return data
