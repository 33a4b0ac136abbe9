"""A week-aligned source dataset for the executive reports, and independent SQL for every figure.

Weeks run Monday to Monday (UTC). Rows sit on the week boundaries (exactly at
Monday 00:00, one microsecond before), carry nulls, values outside the
vocabularies, hostile text, and takedown times from minutes to weeks, so each
definition is exercised at its edges. :func:`sql_figures` counts every
figure with hand-written SQL (no project code), on SQLite or PostgreSQL.
"""

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, DateTime, Engine, bindparam, text

from eclipse_exports.source import schema

WEEK_PREV, WEEK_1, WEEK_2, WEEK_3 = (datetime(2026, 10, 5, tzinfo=UTC) + timedelta(days=7 * n) for n in range(4))
WEEKS = (WEEK_PREV, WEEK_1, WEEK_2, WEEK_3)
START = WEEK_PREV - timedelta(days=14)
HOSTILE_NAME = 'Acme <script>alert("name")</script> & Sons'
HOSTILE = ['<script>alert(1)</script>', '<img src=x onerror="alert(2)">', 'javascript:alert(3)',
           '</style><script>alert(4)</script>', '"><svg onload=alert(5)>', "<a href='javascript:alert(6)'>x</a>"]

WORKSPACES = [
    ("ws_north", "Northwind Traders", "active"),
    ("ws_hostile", HOSTILE_NAME, "active"),
    ("ws_quiet", "Quiet Ltd", "active"),
    ("ws_old", "Archived Corp", "archived"),
    ("ws_gone", "Deleted Corp", "deleted"),
]
ACTIVE = ("ws_hostile", "ws_north", "ws_quiet")
MEMBERS = [  # user, workspace, role, email
    ("u_north_owner", "ws_north", "owner", "owner@north.example"),
    ("u_north_admin", "ws_north", "admin", "admin@north.example"),
    ("u_north_admin2", "ws_north", "admin", ""),
    ("u_north_analyst", "ws_north", "analyst", "analyst@north.example"),
    ("u_north_viewer", "ws_north", "viewer", "viewer@north.example"),
    ("u_hostile_owner", "ws_hostile", "owner", "owner@hostile.example"),
    ("u_quiet_owner", "ws_quiet", "owner", "owner@quiet.example"),
    ("u_old_owner", "ws_old", "owner", "owner@old.example"),
    ("u_gone_owner", "ws_gone", "owner", "owner@gone.example"),
]
RECIPIENTS = {"ws_north": ["admin@north.example", "owner@north.example"], "ws_hostile": ["owner@hostile.example"],
              "ws_quiet": ["owner@quiet.example"]}
SEVERITIES = ["critical", "high", "medium", "low", None, "urgent"]
ALERT_STATUSES = ["new", "acknowledged", "resolved", "dismissed", None]
TYPES = ["phishing", "counterfeit", "impersonation", "trademark", "domain_squatting", "social_media", None]
INF_STATUSES = ["open", "in_review", "takedown_requested", "resolved", "rejected", None]
ACTION_STATUSES = ["pending", "in_progress", "completed", "failed"]


def _moments(rng: random.Random, n: int, busy_weeks: tuple[datetime, ...]) -> list[datetime]:
    """``n`` instants in ``busy_weeks``, plus every week's boundaries (inclusive start, last microsecond)."""
    edges = [w + d for w in busy_weeks for d in (timedelta(0), timedelta(days=7, microseconds=-1))]
    random_ones = [rng.choice(busy_weeks) + timedelta(seconds=rng.randrange(7 * 86_400),
                                                      microseconds=rng.randrange(1_000_000)) for _ in range(n)]
    return edges + random_ones


def build_report_dataset(seed: int = 77) -> dict[str, list[dict]]:
    """Rows for every source table. ``ws_quiet`` has data only before ``WEEK_PREV`` (its report weeks are empty)."""
    rng = random.Random(seed)
    data: dict[str, list[dict]] = {
        "workspaces": [{"id": i, "name": n, "status": s, "created_at": START} for i, n, s in WORKSPACES],
        "users": [{"id": u, "email": e, "name": u} for u, _, _, e in MEMBERS],
        "workspace_members": [{"workspace_id": w, "user_id": u, "role": r} for u, w, r, _ in MEMBERS],
        "brands": [{"id": f"br_{w}_{b}", "workspace_id": w, "name": name}
                   for w, *_ in WORKSPACES for b, name in enumerate(["Main brand", 'Second "brand"'])],
        "alerts": [], "infringements": [], "actions": [],
    }
    plan = {"ws_north": (WEEKS, 160), "ws_hostile": (WEEKS, 60), "ws_quiet": ((START,), 20),
            "ws_old": (WEEKS, 30), "ws_gone": (WEEKS, 30)}
    for ws, (weeks, n) in plan.items():
        hostile = ws == "ws_hostile"

        def title(i: int, kind: str, hostile: bool = hostile, ws: str = ws) -> str:
            return rng.choice(HOSTILE) if hostile and i % 2 else f"{kind} {i} of {ws}"

        for i, moment in enumerate(_moments(rng, n, weeks)):
            data["alerts"].append({
                "id": f"alt_{ws}_{i:04d}", "workspace_id": ws, "brand_id": f"br_{ws}_{i % 2}",
                "title": title(i, "Alert"), "url": rng.choice(HOSTILE) if hostile else f"https://x{i}.example/",
                "severity": rng.choice(SEVERITIES if hostile else SEVERITIES[:5]),
                "status": rng.choice(ALERT_STATUSES), "detected_at": moment if i % 40 else None,
                "monitor_source": "domain_watch"})
        for i, moment in enumerate(_moments(rng, n // 2, weeks)):
            data["infringements"].append({
                "id": f"inf_{ws}_{i:04d}", "workspace_id": ws, "brand_id": f"br_{ws}_{i % 2}", "alert_id": None,
                "title": title(i, "Infringement"), "type": rng.choice(TYPES), "url": f"https://i{i}.example/",
                "domain": rng.choice(HOSTILE) if hostile else f"d{i}.example",
                "severity": rng.choice(SEVERITIES[:5]), "status": rng.choice(INF_STATUSES),
                "detected_at": moment if i % 30 else None})
        infringement_ids = [r["id"] for r in data["infringements"] if r["workspace_id"] == ws]
        for i, moment in enumerate(_moments(rng, n // 2, weeks)):
            status = rng.choice(ACTION_STATUSES)
            created = moment - timedelta(minutes=rng.choice([5, 50, 600, 3000, 20_000]))
            data["actions"].append({
                "id": f"act_{ws}_{i:04d}", "workspace_id": ws, "infringement_id": rng.choice(infringement_ids),
                "action_type": rng.choice(["takedown_request", "dmca_notice", "monitoring"]), "status": status,
                "priority": "normal", "assigned_to": None, "created_at": created if i % 25 else None,
                "completed_at": moment if status in ("completed", "failed") else None, "result": None})
    return data


REPORT_DATASET = build_report_dataset()


def insert_report_dataset(engine: Engine) -> None:
    """Insert :data:`REPORT_DATASET` into an empty source database whose tables exist."""
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            if REPORT_DATASET.get(table.name):
                conn.execute(table.insert(), REPORT_DATASET[table.name])


OPEN = "('open', 'in_review', 'takedown_requested')"


def _query(conn: Connection, sql: str, start: datetime, end: datetime, workspace_id: str) -> list:
    names = [name for name in ("s", "e") if f":{name}" in sql]
    statement = text(sql).bindparams(*(bindparam(name, type_=DateTime(timezone=True)) for name in names))
    values = {"s": start, "e": end, "ws": workspace_id}
    return conn.execute(statement, {name: values[name] for name in (*names, "ws")}).all()


def _median_seconds(conn: Connection, start: datetime, end: datetime, workspace_id: str) -> float | None:
    where = ("FROM actions WHERE workspace_id = :ws AND status = 'completed' AND completed_at >= :s "
             "AND completed_at < :e AND created_at IS NOT NULL")
    if conn.dialect.name == "postgresql":
        sql = ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM completed_at - created_at)) "
               + where)
    else:
        seconds = "(julianday(completed_at) - julianday(created_at)) * 86400.0"
        sql = (f"SELECT AVG(d) FROM (SELECT {seconds} AS d {where} ORDER BY d "
               f"LIMIT 2 - (SELECT COUNT(*) {where}) % 2 OFFSET (SELECT (COUNT(*) - 1) / 2 {where}))")
    value = _query(conn, sql, start, end, workspace_id)[0][0]
    return None if value is None else float(value)


def sql_figures(conn: Connection, workspace_id: str, start: datetime, end: datetime) -> dict:
    """Every figure of ``[start, end)`` by the page's ``data-figure`` names (breakdowns keyed by slug)."""
    def one(sql: str) -> int:
        return _query(conn, sql, start, end, workspace_id)[0][0]

    def grouped(sql: str) -> dict:
        return {key: n for key, n in _query(conn, sql, start, end, workspace_id)}

    new = "FROM alerts WHERE workspace_id = :ws AND detected_at >= :s AND detected_at < :e"
    opened = "FROM infringements WHERE workspace_id = :ws AND detected_at >= :s AND detected_at < :e"
    still_open = f"FROM infringements WHERE workspace_id = :ws AND detected_at < :e AND status IN {OPEN}"
    finished = "FROM actions WHERE workspace_id = :ws AND completed_at >= :s AND completed_at < :e AND status = "
    completed, failed = one(f"SELECT COUNT(*) {finished}'completed'"), one(f"SELECT COUNT(*) {finished}'failed'")
    return {
        "alerts_new": one(f"SELECT COUNT(*) {new}"),
        "critical_alerts_new": one(f"SELECT COUNT(*) {new} AND severity = 'critical'"),
        "alerts_resolved": one(f"SELECT COUNT(*) {new} AND status = 'resolved'"),
        "infringements_opened": one(f"SELECT COUNT(*) {opened}"),
        "open_infringements": one(f"SELECT COUNT(*) {still_open}"),
        "actions_completed": completed,
        "actions_failed": failed,
        "takedown_success_rate": completed / (completed + failed) if completed + failed else None,
        "median_takedown_seconds": _median_seconds(conn, start, end, workspace_id),
        "alerts_by_severity": grouped(f"SELECT severity, COUNT(*) {new} GROUP BY severity"),
        "alerts_by_status": grouped(f"SELECT status, COUNT(*) {new} GROUP BY status"),
        "infringements_by_type": grouped(f"SELECT type, COUNT(*) {opened} GROUP BY type"),
        "open_infringements_by_status": grouped(f"SELECT status, COUNT(*) {still_open} GROUP BY status"),
        "actions_created": one("SELECT COUNT(*) FROM actions WHERE workspace_id = :ws AND created_at >= :s "
                               "AND created_at < :e"),
    }


