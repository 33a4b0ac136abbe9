"""A hand-made source dataset with hostile text and nulls, and the rows an export must contain.

Expected rows are computed here in plain Python from the inserted rows, not
with the project's query builders, so the tests compare two independent
derivations.
"""

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from eclipse_exports.source import schema

BASE = datetime(2026, 10, 1, tzinfo=UTC)

HOSTILE = [
    'He said "hello", then left',
    "comma, separated, values",
    "line one\nline two",
    "windows\r\nline end",
    "\ufeffstarts with a BOM",
    "emoji 🚀🔥 and ünïcödé",
    "שלום עולם right-to-left",
    "مرحبا بالعالم",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "+SUM(1,2)",
    "-2+3",
    "@cmd",
    "\tleading tab",
    "'already quoted",
    "<script>alert(1)</script>",
    "Robert'); DROP TABLE alerts;--",
    "x" * 10_000,
    "",
    " ",
]

WORKSPACES = [
    ("ws_a", "Alpha Inc", "active"),
    ("ws_b", "Beta LLC", "active"),
    ("ws_arch", "Archived Co", "archived"),
    ("ws_del", "Deleted Co", "deleted"),
]
USERS = [
    ("u_owner", "ws_a", "owner"), ("u_admin", "ws_a", "admin"), ("u_analyst", "ws_a", "analyst"),
    ("u_viewer", "ws_a", "viewer"), ("u_b", "ws_b", "owner"), ("u_arch", "ws_arch", "owner"),
    ("u_del", "ws_del", "owner"),
]
LONELY_USER = "u_none"
BRANDS = [("br_a1", "ws_a", "Alpha"), ("br_a2", "ws_a", 'Alpha, "Pay"'), ("br_b1", "ws_b", "Beta")]
SEVERITIES = ["low", "medium", "high", "critical"]
ALERT_STATUSES = ["new", "acknowledged", "resolved", "dismissed"]
INF_STATUSES = ["open", "in_review", "takedown_requested", "resolved", "rejected"]
ACTION_STATUSES = ["pending", "in_progress", "completed", "failed"]


def _maybe(rng: random.Random, value, p_null: float = 0.1):
    return None if rng.random() < p_null else value


def _text(rng: random.Random) -> str:
    return rng.choice(HOSTILE) if rng.random() < 0.6 else f"plain title {rng.randrange(10**6)}"


def _moment(rng: random.Random) -> datetime:
    return BASE + timedelta(seconds=rng.randrange(60 * 86_400), microseconds=rng.randrange(1_000_000))


def build_dataset(per_workspace: int = 150, seed: int = 1234) -> dict[str, list[dict]]:
    """Rows for every source table: ``per_workspace`` alerts, infringements and actions per workspace."""
    rng = random.Random(seed)
    data: dict[str, list[dict]] = {
        "workspaces": [{"id": i, "name": n, "status": s, "created_at": BASE} for i, n, s in WORKSPACES],
        "users": [{"id": u, "email": f"{u}@mail.example", "name": u.title()} for u, _, _ in USERS]
        + [{"id": LONELY_USER, "email": "none@mail.example", "name": "Nobody"}],
        "workspace_members": [{"workspace_id": w, "user_id": u, "role": r} for u, w, r in USERS],
        "brands": [{"id": b, "workspace_id": w, "name": n} for b, w, n in BRANDS],
        "alerts": [], "infringements": [], "actions": [],
    }
    for ws_id, _, _ in WORKSPACES:
        brands = [b for b, w, _ in BRANDS if w == ws_id] or ["br_a1"]
        members = [u for u, w, _ in USERS if w == ws_id]
        for n in range(per_workspace):
            data["alerts"].append({
                "id": f"alt_{ws_id}_{n:04d}", "workspace_id": ws_id, "brand_id": rng.choice(brands),
                "title": _maybe(rng, _text(rng)), "url": _maybe(rng, f"https://x{n}.example/?q={_text(rng)[:20]}"),
                "severity": _maybe(rng, rng.choice(SEVERITIES)), "status": _maybe(rng, rng.choice(ALERT_STATUSES)),
                "detected_at": _maybe(rng, _moment(rng), 0.03), "monitor_source": _maybe(rng, _text(rng)),
            })
        for n in range(per_workspace):
            data["infringements"].append({
                "id": f"inf_{ws_id}_{n:04d}", "workspace_id": ws_id, "brand_id": rng.choice(brands),
                "alert_id": _maybe(rng, f"alt_{ws_id}_{rng.randrange(per_workspace):04d}", 0.3),
                "title": _maybe(rng, _text(rng)), "type": rng.choice(["phishing", "counterfeit"]),
                "url": _maybe(rng, _text(rng)), "domain": _maybe(rng, f"d{n}.example"),
                "severity": _maybe(rng, rng.choice(SEVERITIES)), "status": _maybe(rng, rng.choice(INF_STATUSES)),
                "detected_at": _maybe(rng, _moment(rng), 0.03),
            })
        for n in range(per_workspace):
            created = _moment(rng)
            data["actions"].append({
                "id": f"act_{ws_id}_{n:04d}", "workspace_id": ws_id,
                "infringement_id": f"inf_{ws_id}_{rng.randrange(per_workspace):04d}",
                "action_type": rng.choice(["takedown_request", "dmca_notice"]),
                "status": rng.choice(ACTION_STATUSES), "priority": _maybe(rng, rng.choice(["low", "urgent"])),
                "assigned_to": _maybe(rng, rng.choice(members), 0.4) if members else None,
                "created_at": _maybe(rng, created, 0.03),
                "completed_at": _maybe(rng, created + timedelta(hours=5), 0.5),
                "result": _maybe(rng, _text(rng), 0.4),
            })
    return data


DATASET = build_dataset()


def insert_dataset(engine: Engine, data: dict[str, list[dict]] = DATASET) -> None:
    """Insert ``data`` into an empty source database whose tables exist."""
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            rows = data.get(table.name, [])
            if rows:
                conn.execute(table.insert(), rows)


def _ts_key(row: dict, column: str) -> tuple:
    value = row[column]
    return (value is None, value or BASE, row["id"])


def expected_rows(resource: str, workspace_id: str, severity=None, status=None, brand=None,
                  date_from=None, date_to=None, data: dict[str, list[dict]] = DATASET) -> list[dict]:
    """The export rows (the interface's columns, Python values, timestamps aware UTC) in the interface's order."""
    brand_names = {b["id"]: b["name"] for b in data["brands"]}
    emails = {u["id"]: u["email"] for u in data["users"]}
    ts_column = "created_at" if resource == "actions" else "detected_at"
    rows = [r for r in data[resource] if r["workspace_id"] == workspace_id]
    if severity is not None:
        rows = [r for r in rows if r["severity"] in severity]
    if status is not None:
        rows = [r for r in rows if r["status"] in status]
    if brand is not None:
        rows = [r for r in rows if brand_names.get(r["brand_id"]) in brand]
    if date_from is not None:
        rows = [r for r in rows if r[ts_column] is not None and r[ts_column] >= date_from]
    if date_to is not None:
        rows = [r for r in rows if r[ts_column] is not None and r[ts_column] < date_to]
    rows.sort(key=lambda r: _ts_key(r, ts_column))
    if resource == "alerts":
        return [{"id": r["id"], "title": r["title"], "url": r["url"], "brand": brand_names.get(r["brand_id"]),
                 "severity": r["severity"], "status": r["status"], "detected_at": r["detected_at"],
                 "monitor_source": r["monitor_source"]} for r in rows]
    if resource == "infringements":
        counts: dict[str, int] = {}
        for a in data["actions"]:
            if a["workspace_id"] == workspace_id:
                counts[a["infringement_id"]] = counts.get(a["infringement_id"], 0) + 1
        return [{"id": r["id"], "title": r["title"], "type": r["type"], "url": r["url"], "domain": r["domain"],
                 "brand": brand_names.get(r["brand_id"]), "severity": r["severity"], "status": r["status"],
                 "detected_at": r["detected_at"], "action_count": counts.get(r["id"], 0)} for r in rows]
    return [{"id": r["id"], "action_type": r["action_type"], "status": r["status"],
             "infringement_id": r["infringement_id"], "priority": r["priority"],
             "assigned_to": emails.get(r["assigned_to"]) if r["assigned_to"] else None,
             "created_at": r["created_at"], "completed_at": r["completed_at"], "result": r["result"]} for r in rows]
