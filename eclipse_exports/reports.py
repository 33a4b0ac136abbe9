"""The executive report of one workspace over a period: figures from the source database, rendered as HTML.

:func:`collect_report` reads counts and the most recent critical alerts and
open infringements of one workspace (every query binds the workspace id);
:func:`render_report` turns them into one self-contained HTML page with
Jinja2, autoescaping every value. Lists are capped at ``LIST_LIMIT`` rows and
the page always says how many there were in all, so nothing is dropped
silently.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Connection, and_, func, select

from eclipse_exports.models import iso_utc
from eclipse_exports.source.schema import actions, alerts, brands, infringements, workspaces

LIST_LIMIT = 25
DEFAULT_PERIOD = timedelta(days=7)
OPEN_INFRINGEMENT_STATUSES = ("open", "in_review", "takedown_requested")
TEMPLATE = "executive_report.html"

_jinja = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"), autoescape=True,
                     undefined=StrictUndefined)


@dataclass
class ReportData:
    """Everything the report shows. Counts are ``{value: n}`` (value ``None`` for nulls); lists are dicts."""

    workspace_id: str
    workspace_name: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    alerts_by_severity: dict = field(default_factory=dict)
    alerts_by_status: dict = field(default_factory=dict)
    infringements_by_type: dict = field(default_factory=dict)
    infringements_by_status: dict = field(default_factory=dict)
    actions_by_status: dict = field(default_factory=dict)
    critical_alerts: list[dict] = field(default_factory=list)
    critical_alert_count: int = 0
    open_infringements: list[dict] = field(default_factory=list)
    open_infringement_count: int = 0

    @property
    def row_count(self) -> int:
        """Alerts, infringements and actions the report covers."""
        return (sum(self.alerts_by_status.values()) + sum(self.infringements_by_status.values())
                + sum(self.actions_by_status.values()))


def _counts(conn: Connection, column, where) -> dict:
    rows = conn.execute(select(column, func.count()).where(where).group_by(column).order_by(column))
    return {value: n for value, n in rows}


def collect_report(conn: Connection, workspace_id: str, period_start: datetime, period_end: datetime,
                   generated_at: datetime) -> ReportData:
    """Read one workspace's figures for ``[period_start, period_end)`` (aware datetimes, UTC).

    Raises ``LookupError`` when the workspace does not exist.
    """
    name = conn.execute(select(workspaces.c.name).where(workspaces.c.id == workspace_id)).scalar_one_or_none()
    if name is None:
        raise LookupError(f"workspace '{workspace_id}' does not exist")
    in_alerts = and_(alerts.c.workspace_id == workspace_id, alerts.c.detected_at >= period_start,
                     alerts.c.detected_at < period_end)
    in_infringements = and_(infringements.c.workspace_id == workspace_id, infringements.c.detected_at >= period_start,
                            infringements.c.detected_at < period_end)
    in_actions = and_(actions.c.workspace_id == workspace_id, actions.c.created_at >= period_start,
                      actions.c.created_at < period_end)
    critical = and_(in_alerts, alerts.c.severity == "critical")
    still_open = and_(in_infringements, infringements.c.status.in_(OPEN_INFRINGEMENT_STATUSES))
    data = ReportData(workspace_id, name, period_start, period_end, generated_at)
    data.alerts_by_severity = _counts(conn, alerts.c.severity, in_alerts)
    data.alerts_by_status = _counts(conn, alerts.c.status, in_alerts)
    data.infringements_by_type = _counts(conn, infringements.c.type, in_infringements)
    data.infringements_by_status = _counts(conn, infringements.c.status, in_infringements)
    data.actions_by_status = _counts(conn, actions.c.status, in_actions)
    data.critical_alert_count = conn.execute(select(func.count()).select_from(alerts).where(critical)).scalar_one()
    data.critical_alerts = [dict(r._mapping) for r in conn.execute(
        select(alerts.c.id, alerts.c.title, alerts.c.url, brands.c.name.label("brand"), alerts.c.status,
               alerts.c.detected_at)
        .select_from(alerts.outerjoin(brands, brands.c.id == alerts.c.brand_id))
        .where(critical).order_by(alerts.c.detected_at.desc(), alerts.c.id).limit(LIST_LIMIT))]
    data.open_infringement_count = conn.execute(
        select(func.count()).select_from(infringements).where(still_open)).scalar_one()
    data.open_infringements = [dict(r._mapping) for r in conn.execute(
        select(infringements.c.id, infringements.c.title, infringements.c.type, infringements.c.domain,
               infringements.c.severity, infringements.c.status, infringements.c.detected_at)
        .where(still_open).order_by(infringements.c.detected_at.desc(), infringements.c.id).limit(LIST_LIMIT))]
    return data


def default_period(now: datetime, date_from: datetime | None, date_to: datetime | None) -> tuple[datetime, datetime]:
    """The report period: the request's ``from``/``to``, else the 7 days up to now."""
    end = date_to or now
    return (date_from or end - DEFAULT_PERIOD), end


def render_report(data: ReportData) -> str:
    """The report as one HTML page (UTF-8 text); every value is autoescaped."""
    return _jinja.get_template(TEMPLATE).render(data=data, fmt=lambda v: iso_utc(v) if v else "",
                                                list_limit=LIST_LIMIT)
