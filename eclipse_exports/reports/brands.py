"""Brands at risk: the brands with the most new critical and high alerts in the period.

For each of the top brands (at most :data:`BRANDS_AT_RISK`, ties by name):
its new critical and high alerts in the period and in the previous period of
the same length, and its open infringements (open, in review or takedown
requested now) detected before the period's end and before its start (the
backlog it carried into the period). Alerts without a brand are one row,
"No brand". Two grouped queries.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select

from eclipse_exports.reports.queries import OPEN_INFRINGEMENT_STATUSES
from eclipse_exports.source.schema import alerts, brands, infringements

BRANDS_AT_RISK = 5
RISK_SEVERITIES = ("critical", "high")


@dataclass(frozen=True)
class BrandRisk:
    """One brand's row: ``brand_id`` ``None`` (and ``name`` ``None``) for alerts without a brand."""

    brand_id: str | None
    name: str | None
    alerts: int
    alerts_previous: int
    open_infringements: int
    open_infringements_previous: int


def _sum_if(condition) -> object:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def brands_at_risk(conn: Connection, workspace_id: str, start: datetime, end: datetime,
                   limit: int = BRANDS_AT_RISK) -> list[BrandRisk]:
    """The top ``limit`` brands of ``workspace_id`` by new critical and high alerts in ``[start, end)``.

    Brands without such an alert this period are left out. Raises the database's own errors.
    """
    previous_start = start - (end - start)
    current = _sum_if(alerts.c.detected_at >= start).label("current")
    previous = _sum_if(alerts.c.detected_at < start).label("previous")
    rows = conn.execute(
        select(alerts.c.brand_id, brands.c.name, current, previous)
        .select_from(alerts.outerjoin(brands, brands.c.id == alerts.c.brand_id))
        .where(alerts.c.workspace_id == workspace_id, alerts.c.severity.in_(RISK_SEVERITIES),
               alerts.c.detected_at >= previous_start, alerts.c.detected_at < end)
        .group_by(alerts.c.brand_id, brands.c.name)
        .having(current > 0)
        .order_by(current.desc(), brands.c.name, alerts.c.brand_id)
        .limit(limit)).all()
    if not rows:
        return []
    ids = [r.brand_id for r in rows if r.brand_id is not None]
    which = or_(infringements.c.brand_id.in_(ids), infringements.c.brand_id.is_(None)) \
        if len(ids) < len(rows) else infringements.c.brand_id.in_(ids)
    backlog = {r.brand_id: (r.now, r.before) for r in conn.execute(
        select(infringements.c.brand_id, _sum_if(infringements.c.detected_at < end).label("now"),
               _sum_if(infringements.c.detected_at < start).label("before"))
        .where(and_(infringements.c.workspace_id == workspace_id, which,
                    infringements.c.status.in_(OPEN_INFRINGEMENT_STATUSES), infringements.c.detected_at < end))
        .group_by(infringements.c.brand_id))}
    return [BrandRisk(r.brand_id, r.name, int(r.current), int(r.previous), *map(int, backlog.get(r.brand_id, (0, 0))))
            for r in rows]
