"""Independent counts of the briefing's figures (trends, brands, ageing, takedowns), with no project code.

Plain SQL where it is a count, and the rows read back and counted in Python
where the project groups in SQL (brands, first actions), so a shared mistake
in a query is unlikely to hide. Works on SQLite and PostgreSQL.
"""

import statistics
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, DateTime, bindparam, text

from tests.report_dataset import OPEN, sql_figures


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite through text(): the stored text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rows(conn: Connection, sql: str, **params) -> list:
    moments = [k for k, v in params.items() if isinstance(v, datetime)]
    statement = text(sql).bindparams(*(bindparam(k, type_=DateTime(timezone=True)) for k in moments))
    return conn.execute(statement, params).all()


def trend_expectations(conn: Connection, workspace_id: str, end: datetime, weeks: int = 12) -> list[dict]:
    """Per week (oldest first): new alerts, by severity, open backlog at its end, completed, failed, rate, median."""
    out = []
    for i in range(weeks):
        start = end - timedelta(days=7 * (weeks - i))
        f = sql_figures(conn, workspace_id, start, start + timedelta(days=7))
        out.append({"week": start.date().isoformat(), "alerts_new": f["alerts_new"],
                    "alerts_by_severity": f["alerts_by_severity"], "open_backlog": f["open_infringements"],
                    "completed": f["actions_completed"], "failed": f["actions_failed"],
                    "rate": f["takedown_success_rate"], "median": f["median_takedown_seconds"]})
    return out


def brand_expectations(conn: Connection, workspace_id: str, start: datetime, end: datetime) -> list[tuple]:
    """``(name, alerts, alerts_previous, open, open_previous)`` of the top 5 brands, most alerts first, then name."""
    previous_start = start - (end - start)
    names = dict(rows(conn, "SELECT id, name FROM brands WHERE workspace_id = :ws", ws=workspace_id))
    tally: dict = {}
    for brand_id, detected in rows(conn, "SELECT brand_id, detected_at FROM alerts WHERE workspace_id = :ws "
                                         "AND severity IN ('critical', 'high') AND detected_at IS NOT NULL",
                                   ws=workspace_id):
        detected = _utc(detected)
        now, before = tally.get(brand_id, (0, 0))
        if start <= detected < end:
            tally[brand_id] = (now + 1, before)
        elif previous_start <= detected < start:
            tally[brand_id] = (now, before + 1)
    backlog: dict = {}
    for brand_id, detected in rows(conn, f"SELECT brand_id, detected_at FROM infringements WHERE workspace_id = :ws "
                                         f"AND status IN {OPEN} AND detected_at IS NOT NULL", ws=workspace_id):
        detected = _utc(detected)
        now, before = backlog.get(brand_id, (0, 0))
        backlog[brand_id] = (now + (detected < end), before + (detected < start))
    ranked = sorted(((b, n, p) for b, (n, p) in tally.items() if n > 0),
                    key=lambda r: (-r[1], names.get(r[0]) is None, names.get(r[0]) or "", r[0] or ""))[:5]
    return [(names.get(b), n, p, *backlog.get(b, (0, 0))) for b, n, p in ranked]


def ageing_expectations(conn: Connection, workspace_id: str, end: datetime) -> dict:
    """Bucket counts, the 10 oldest (id, age seconds), open critical count and the 10 oldest of those."""
    def count(low_days: int | None, high_days: int | None) -> int:
        where = [f"workspace_id = :ws AND status IN {OPEN} AND detected_at < :e"]
        params: dict = {"ws": workspace_id, "e": end}
        if low_days is not None:  # age >= low: detected <= end - low
            where.append("detected_at <= :lo")
            params["lo"] = end - timedelta(days=low_days)
        if high_days is not None:  # age < high: detected > end - high
            where.append("detected_at > :hi")
            params["hi"] = end - timedelta(days=high_days)
        return rows(conn, "SELECT COUNT(*) FROM infringements WHERE " + " AND ".join(where), **params)[0][0]

    oldest = rows(conn, f"SELECT id, detected_at FROM infringements WHERE workspace_id = :ws AND status IN {OPEN} "
                        "AND detected_at < :e ORDER BY detected_at, id LIMIT 10", ws=workspace_id, e=end)
    critical = "FROM alerts WHERE workspace_id = :ws AND severity = 'critical' AND status IN ('new', 'acknowledged') " \
               "AND detected_at < :e"
    return {
        "buckets": {"under_7": count(None, 7), "7_30": count(7, 30), "30_90": count(30, 90),
                    "over_90": count(90, None)},
        "oldest": [(i, round((end - _utc(d)).total_seconds())) for i, d in oldest],
        "critical_count": rows(conn, f"SELECT COUNT(*) {critical}", ws=workspace_id, e=end)[0][0],
        "critical": [(i, round((end - _utc(d)).total_seconds())) for i, d in rows(
            conn, f"SELECT id, detected_at {critical} ORDER BY detected_at, id LIMIT 10", ws=workspace_id, e=end)],
    }


def takedown_expectations(conn: Connection, workspace_id: str, start: datetime, end: datetime) -> dict:
    """By action type ``{type: (completed, failed)}``, failure results most frequent first, first-action median."""
    finished = "FROM actions WHERE workspace_id = :ws AND completed_at >= :s AND completed_at < :e"
    by_type: dict = {}
    for action_type, status, n in rows(conn, f"SELECT action_type, status, COUNT(*) {finished} AND status IN "
                                             "('completed', 'failed') GROUP BY action_type, status",
                                       ws=workspace_id, s=start, e=end):
        c, f = by_type.get(action_type, (0, 0))
        by_type[action_type] = (c + n, f) if status == "completed" else (c, f + n)
    failures = sorted(rows(conn, f"SELECT result, COUNT(*) {finished} AND status = 'failed' GROUP BY result",
                           ws=workspace_id, s=start, e=end), key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    first: dict = {}
    for infringement_id, created in rows(conn, "SELECT infringement_id, created_at FROM actions WHERE workspace_id = "
                                               ":ws AND created_at IS NOT NULL", ws=workspace_id):
        created = _utc(created)
        if infringement_id not in first or created < first[infringement_id]:
            first[infringement_id] = created
    detected = dict(rows(conn, "SELECT id, detected_at FROM infringements WHERE workspace_id = :ws "
                               "AND detected_at IS NOT NULL", ws=workspace_id))
    waits = [(at - _utc(detected[i])).total_seconds() for i, at in first.items() if start <= at < end and i in detected]
    return {"by_type": by_type, "failures": [tuple(r) for r in failures], "first_count": len(waits),
            "first_median": statistics.median(waits) if waits else None}
