"""Ageing of the backlog at a period's end: open infringements by age, the oldest ones, open critical alerts.

Age = period end − ``detected_at``. An infringement is open when detected
before the period's end with status ``open``, ``in_review`` or
``takedown_requested`` (now: the source keeps no status history), the same
set as the headline figure. Buckets: under 7 days, 7 to 30, 30 to 90, and 90
days or more (a bucket includes its lower bound). Open critical alerts are
alerts of severity ``critical`` detected before the period's end whose status
is ``new`` or ``acknowledged``, oldest first.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, func, select

from eclipse_exports.reports.queries import OPEN_INFRINGEMENT_STATUSES, as_utc
from eclipse_exports.source.schema import alerts, brands, infringements

AGE_BUCKETS = (("under_7", "Under 7 days", 0), ("7_30", "7–30 days", 7), ("30_90", "30–90 days", 30),
               ("over_90", "90 days or more", 90))
"""``(name, label, lower bound in days)``, youngest first."""
OLDEST_LISTED = 10
OPEN_ALERT_STATUSES = ("new", "acknowledged")


@dataclass
class Ageing:
    """The backlog's ages: ``buckets`` ``{name: count}`` in :data:`AGE_BUCKETS` order; lists of dicts, oldest
    first, each with ``age_seconds``; ``critical_open_count`` counts every open critical alert."""

    buckets: dict[str, int] = field(default_factory=dict)
    oldest: list[dict] = field(default_factory=list)
    critical_open: list[dict] = field(default_factory=list)
    critical_open_count: int = 0

    @property
    def oldest_age_seconds(self) -> float | None:
        """Age of the oldest open infringement; ``None`` when none is open."""
        return self.oldest[0]["age_seconds"] if self.oldest else None


def _with_age(row, end: datetime) -> dict:
    detected = as_utc(row.detected_at)
    return dict(row._mapping, detected_at=detected, age_seconds=(end - detected).total_seconds())


def collect_ageing(conn: Connection, workspace_id: str, end: datetime, listed: int = OLDEST_LISTED) -> Ageing:
    """The ageing of ``workspace_id``'s backlog at ``end`` (aware): three queries. Raises the database's errors."""
    open_at_end = (infringements.c.workspace_id == workspace_id, infringements.c.detected_at < end,
                   infringements.c.status.in_(OPEN_INFRINGEMENT_STATUSES))
    bucket = case(*((infringements.c.detected_at <= end - timedelta(days=low), name)
                    for name, _, low in reversed(AGE_BUCKETS[1:])), else_=AGE_BUCKETS[0][0])
    inner = select(bucket.label("bucket")).where(*open_at_end).subquery()
    found = dict(conn.execute(select(inner.c.bucket, func.count()).group_by(inner.c.bucket)).all())
    result = Ageing(buckets={name: found.get(name, 0) for name, _, _ in AGE_BUCKETS})
    result.oldest = [_with_age(r, end) for r in conn.execute(
        select(infringements.c.id, infringements.c.title, infringements.c.type, infringements.c.domain,
               brands.c.name.label("brand"), infringements.c.severity, infringements.c.status,
               infringements.c.detected_at)
        .select_from(infringements.outerjoin(brands, brands.c.id == infringements.c.brand_id))
        .where(*open_at_end).order_by(infringements.c.detected_at, infringements.c.id).limit(listed))]
    critical = (alerts.c.workspace_id == workspace_id, alerts.c.severity == "critical", alerts.c.detected_at < end,
                alerts.c.status.in_(OPEN_ALERT_STATUSES))
    result.critical_open_count = conn.execute(select(func.count()).where(*critical)).scalar_one()
    result.critical_open = [_with_age(r, end) for r in conn.execute(
        select(alerts.c.id, alerts.c.title, alerts.c.url, brands.c.name.label("brand"), alerts.c.status,
               alerts.c.detected_at)
        .select_from(alerts.outerjoin(brands, brands.c.id == alerts.c.brand_id))
        .where(*critical).order_by(alerts.c.detected_at, alerts.c.id).limit(listed))]
    return result
