"""Demo data for the Eclipse source database: the interface's named workspaces and
users plus realistic generated alerts, infringements, actions and audit logs (``demo_audit_logs.py``).

Generation is deterministic: the same ``seed`` and ``as_of`` give the same
rows. Rows are generated and inserted in batches, so a ``large`` scale (one
million alerts) needs no more memory than a small one. On PostgreSQL the
batches go in with ``COPY``; elsewhere with an ``executemany`` INSERT.

``generated_workspaces`` adds that many more active workspaces
(``ws_gen_0001`` …), each with an owner, an admin and an analyst, two brands
and its own share of alerts, infringements and actions over the same 90
days (a hundredth of the scale's totals each). They come from their own
random stream, so the named workspaces' rows do not change.
"""

import csv
import io
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, Table, delete

from eclipse_exports.models import SEVERITIES, STATUS_VOCABULARY, ResourceType
from eclipse_exports.source.demo_audit_logs import audit_log_rows
from eclipse_exports.source.schema import (
    actions,
    alerts,
    audit_logs,
    brands,
    infringements,
    metadata,
    users,
    workspace_members,
    workspaces,
)

BATCH_ROWS = 20_000
HISTORY_DAYS = 90


@dataclass(frozen=True)
class Scale:
    """How many rows to generate in total, across the demo workspaces."""

    alerts: int
    infringements: int
    actions: int
    audit_logs: int = 0


SCALES = {
    "tiny": Scale(alerts=2_000, infringements=400, actions=600, audit_logs=1_000),
    "small": Scale(alerts=50_000, infringements=10_000, actions=15_000, audit_logs=20_000),
    "large": Scale(alerts=1_000_000, infringements=200_000, actions=300_000, audit_logs=400_000),
}

# (id, name, status, share of generated rows, brand names)
DEMO_WORKSPACES = [
    ("ws_acme", "Acme Corporation", "active", 0.50, ["Acme", "Acme Pay", "AcmeCloud", "Acme Outdoor"]),
    ("ws_globex", "Globex", "active", 0.25, ["Globex", "Globex Bank", "Globex Travel"]),
    ("ws_initech", "Initech", "active", 0.15, ["Initech", "Initech TPS"]),
    ("ws_umbrella", "Umbrella Corporation", "archived", 0.10, ["Umbrella", "Umbrella Pharma"]),
]
DEMO_USERS = [
    ("usr_acme_owner", "ws_acme", "owner", "Alex Owner"),
    ("usr_acme_analyst", "ws_acme", "analyst", "Ana Lyst"),
    ("usr_acme_viewer", "ws_acme", "viewer", "Vic Viewer"),
    ("usr_globex_admin", "ws_globex", "admin", "Gloria Admin"),
    ("usr_initech_owner", "ws_initech", "owner", "Ivan Owner"),
    ("usr_umbrella_owner", "ws_umbrella", "owner", "Ursula Owner"),
]

MONITOR_SOURCES = ["domain_watch", "marketplace_scan", "social_monitor", "ct_log", "search_engine", "app_store"]
INFRINGEMENT_TYPES = ["phishing", "counterfeit", "impersonation", "trademark", "domain_squatting", "social_media"]
ACTION_TYPES = ["takedown_request", "cease_and_desist", "platform_report", "dmca_notice", "monitoring"]
PRIORITIES = ["low", "normal", "high", "urgent"]
MARKETPLACES = ["shop.marketplace.example", "bazaar.example", "deals-outlet.test", "auctions.example.net"]
SOCIAL = ["social.example", "photogram.test", "chirp.example"]
PHISH_WORDS = ["login", "secure", "verify", "account", "support", "billing", "update", "wallet"]
TLDS = [".example", ".test", ".example.com", ".example.net", ".invalid"]
PRODUCTS = ["sneakers", "handbag", "watch", "jacket", "headphones", "perfume", "sunglasses", "phone case"]
RESULTS = ["Removed by host", "Listing taken down", "Registrar suspended domain", "No response from host",
           "Platform refused: insufficient evidence", "Account suspended", None]
# A drawn result read as the action's outcome: a failed action's says why it failed, a completed one's what was
# done. The draw stays one rng.choice(RESULTS), so a seed gives the same rows as before, only these texts differ.
_AS_FAILURE = {"Removed by host": "Host ignored the notice", "Listing taken down": "Platform refused: not a violation",
               "Registrar suspended domain": "Registrar refused: no policy breach",
               "Account suspended": "Platform refused: account verified"}
_AS_SUCCESS = {"No response from host": "Removed by host",
               "Platform refused: insufficient evidence": "Listing taken down"}
TITLE_EXTRAS = ["", "", "", " (mirror)", ", reported twice", ' "urgent"', " – déjà vu", " 🔒", " — نسخة"]


def _result(rng: random.Random, status: str) -> str | None:
    """A finished action's ``result`` text that agrees with its ``status`` (``None``: the action gave none)."""
    drawn = rng.choice(RESULTS)
    return _AS_FAILURE.get(drawn, drawn) if status == "failed" else _AS_SUCCESS.get(drawn, drawn)


def create_schema(engine: Engine) -> None:
    """Create the source tables (and indexes) if they do not exist."""
    metadata.create_all(engine)


def _slug(brand: str) -> str:
    return brand.lower().replace(" ", "")


class _Generator:
    """Deterministic row source for one seed and reference time."""

    def __init__(self, seed: int, as_of: datetime) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.window = HISTORY_DAYS * 86_400

    def moment(self) -> datetime:
        return self.as_of - timedelta(seconds=self.rng.randrange(self.window))

    def severity(self) -> str:
        return self.rng.choices(SEVERITIES, weights=(40, 30, 20, 10))[0]

    def url(self, brand: str, kind: str) -> tuple[str, str]:
        rng, slug = self.rng, _slug(brand)
        if kind in ("counterfeit", "trademark"):
            host = rng.choice(MARKETPLACES)
            product = rng.choice(PRODUCTS).replace(" ", "+")
            return f"https://{host}/item/{rng.randrange(10**6, 10**8)}?q={slug}+{product}", host
        if kind in ("social_media", "impersonation"):
            host = rng.choice(SOCIAL)
            return f"https://{host}/{slug}_official{rng.randrange(1, 999)}", host
        host = f"{slug}-{rng.choice(PHISH_WORDS)}-{rng.choice(PHISH_WORDS)}{rng.choice(TLDS)}"
        return f"https://{host}/{rng.choice(PHISH_WORDS)}/index.php?session={rng.getrandbits(32):08x}", host

    def title(self, brand: str, kind: str) -> str:
        rng = self.rng
        base = {
            "phishing": f"Phishing page impersonating {brand} {rng.choice(PHISH_WORDS)}",
            "counterfeit": f"Counterfeit {brand} {rng.choice(PRODUCTS)} listing",
            "impersonation": f"Account impersonating {brand}",
            "trademark": f"Unauthorised use of the {brand} trademark",
            "domain_squatting": f"Look-alike domain registered for {brand}",
            "social_media": f"Fake {brand} support profile",
        }[kind]
        return base + rng.choice(TITLE_EXTRAS)


def _shares(total: int) -> list[int]:
    counts = [int(total * share) for *_, share, _ in DEMO_WORKSPACES]
    counts[0] += total - sum(counts)
    return counts


def _reference_rows(as_of: datetime) -> dict[Table, list[dict]]:
    ws_rows, brand_rows, user_rows, member_rows = [], [], [], []
    for ws_id, name, status, _share, brand_names in DEMO_WORKSPACES:
        ws_rows.append({"id": ws_id, "name": name, "status": status, "created_at": as_of - timedelta(days=400)})
        for n, brand in enumerate(brand_names):
            brand_rows.append({"id": f"brd_{ws_id.removeprefix('ws_')}_{n}", "workspace_id": ws_id, "name": brand})
    for user_id, ws_id, role, name in DEMO_USERS:
        email = f"{user_id.removeprefix('usr_')}@{ws_id.removeprefix('ws_')}.example"
        user_rows.append({"id": user_id, "email": email, "name": name})
        member_rows.append({"workspace_id": ws_id, "user_id": user_id, "role": role})
    return {workspaces: ws_rows, users: user_rows, workspace_members: member_rows, brands: brand_rows}


def _alert_rows(gen: _Generator, counts: list[int]) -> Iterator[dict]:
    rng, n = gen.rng, 0
    for (ws_id, _name, _status, _share, brand_names), count in zip(DEMO_WORKSPACES, counts, strict=True):
        short = ws_id.removeprefix("ws_")
        for _ in range(count):
            b = rng.randrange(len(brand_names))
            kind = rng.choice(INFRINGEMENT_TYPES)
            url, _host = gen.url(brand_names[b], kind)
            n += 1
            yield {
                "id": f"alt_{short}_{n:08d}",
                "workspace_id": ws_id,
                "brand_id": f"brd_{short}_{b}",
                "title": gen.title(brand_names[b], kind),
                "url": url,
                "severity": gen.severity(),
                "status": rng.choices(STATUS_VOCABULARY[ResourceType.ALERTS], weights=(40, 25, 25, 10))[0],
                "detected_at": gen.moment(),
                "monitor_source": rng.choice(MONITOR_SOURCES) if rng.random() > 0.03 else None,
            }


def _infringement_rows(gen: _Generator, counts: list[int], alert_counts: list[int]) -> Iterator[dict]:
    rng, n, alert_offset = gen.rng, 0, 0
    for (ws_id, _name, _status, _share, brand_names), count, n_alerts in zip(
        DEMO_WORKSPACES, counts, alert_counts, strict=True
    ):
        short = ws_id.removeprefix("ws_")
        for _ in range(count):
            b = rng.randrange(len(brand_names))
            kind = rng.choice(INFRINGEMENT_TYPES)
            url, host = gen.url(brand_names[b], kind)
            alert_id = None
            if n_alerts and rng.random() < 0.8:
                alert_id = f"alt_{short}_{alert_offset + rng.randrange(n_alerts) + 1:08d}"
            n += 1
            yield {
                "id": f"inf_{short}_{n:08d}",
                "workspace_id": ws_id,
                "brand_id": f"brd_{short}_{b}",
                "alert_id": alert_id,
                "title": gen.title(brand_names[b], kind),
                "type": kind,
                "url": url,
                "domain": host,
                "severity": gen.severity(),
                "status": rng.choice(STATUS_VOCABULARY[ResourceType.INFRINGEMENTS]),
                "detected_at": gen.moment(),
            }
        alert_offset += n_alerts


def _action_rows(gen: _Generator, counts: list[int], infringement_counts: list[int]) -> Iterator[dict]:
    rng, n, inf_offset = gen.rng, 0, 0
    for (ws_id, *_), count, n_inf in zip(DEMO_WORKSPACES, counts, infringement_counts, strict=True):
        short = ws_id.removeprefix("ws_")
        assignees = [u for u, w, role, _ in DEMO_USERS if w == ws_id and role != "viewer"]
        for _ in range(count if n_inf else 0):
            created = gen.moment()
            status = rng.choice(STATUS_VOCABULARY[ResourceType.ACTIONS])
            done = status in ("completed", "failed")
            n += 1
            yield {
                "id": f"act_{short}_{n:08d}",
                "workspace_id": ws_id,
                "infringement_id": f"inf_{short}_{inf_offset + rng.randrange(n_inf) + 1:08d}",
                "action_type": rng.choice(ACTION_TYPES),
                "status": status,
                "priority": rng.choices(PRIORITIES, weights=(20, 50, 20, 10))[0],
                "assigned_to": rng.choice(assignees) if assignees and rng.random() < 0.7 else None,
                "created_at": created,
                "completed_at": min(created + timedelta(hours=rng.randrange(1, 240)), gen.as_of) if done else None,
                "result": _result(rng, status) if done else None,
            }
        inf_offset += n_inf


GENERATED_SHARE = 0.01
GENERATED_ROLES = (("owner", "Owner"), ("admin", "Admin"), ("analyst", "Analyst"))


def generated_workspace_id(n: int) -> str:
    """Id of the ``n``-th generated workspace (from 1): ``ws_gen_0001``."""
    return f"ws_gen_{n:04d}"


def _generated_reference_rows(count: int, as_of: datetime) -> dict[Table, list[dict]]:
    rows: dict[Table, list[dict]] = {workspaces: [], users: [], workspace_members: [], brands: []}
    for n in range(1, count + 1):
        ws_id, short = generated_workspace_id(n), f"gen{n:04d}"
        rows[workspaces].append({"id": ws_id, "name": f"Generated Workspace {n:04d}", "status": "active",
                                 "created_at": as_of - timedelta(days=200)})
        for b in range(2):
            rows[brands].append({"id": f"brd_{short}_{b}", "workspace_id": ws_id, "name": f"Brand {n:04d}-{b}"})
        for role, title in GENERATED_ROLES:
            user_id = f"usr_{short}_{role}"
            rows[users].append({"id": user_id, "email": f"{role}@{short}.example", "name": f"{title} {n:04d}"})
            rows[workspace_members].append({"workspace_id": ws_id, "user_id": user_id, "role": role})
    return rows


def _generated_rows(gen: _Generator, count: int, sizes: Scale) -> Iterator[tuple[Table, dict]]:
    """Alerts, then infringements, then actions of every generated workspace (FKs in insert order)."""
    rng = gen.rng
    per = Scale(*(max(1, int(n * GENERATED_SHARE)) for n in (sizes.alerts, sizes.infringements, sizes.actions)))
    for table in (alerts, infringements, actions):
        for n in range(1, count + 1):
            ws_id, short = generated_workspace_id(n), f"gen{n:04d}"
            names = [f"Brand {n:04d}-0", f"Brand {n:04d}-1"]
            if table is alerts:
                for i in range(per.alerts):
                    b, kind = rng.randrange(2), rng.choice(INFRINGEMENT_TYPES)
                    yield alerts, {
                        "id": f"alt_{short}_{i:06d}", "workspace_id": ws_id, "brand_id": f"brd_{short}_{b}",
                        "title": gen.title(names[b], kind), "url": gen.url(names[b], kind)[0],
                        "severity": gen.severity(),
                        "status": rng.choices(STATUS_VOCABULARY[ResourceType.ALERTS], weights=(40, 25, 25, 10))[0],
                        "detected_at": gen.moment(), "monitor_source": rng.choice(MONITOR_SOURCES)}
            elif table is infringements:
                for i in range(per.infringements):
                    b, kind = rng.randrange(2), rng.choice(INFRINGEMENT_TYPES)
                    url, host = gen.url(names[b], kind)
                    yield infringements, {
                        "id": f"inf_{short}_{i:06d}", "workspace_id": ws_id, "brand_id": f"brd_{short}_{b}",
                        "alert_id": f"alt_{short}_{rng.randrange(per.alerts):06d}", "title": gen.title(names[b], kind),
                        "type": kind, "url": url, "domain": host, "severity": gen.severity(),
                        "status": rng.choice(STATUS_VOCABULARY[ResourceType.INFRINGEMENTS]),
                        "detected_at": gen.moment()}
            else:
                for i in range(per.actions):
                    created, status = gen.moment(), rng.choice(STATUS_VOCABULARY[ResourceType.ACTIONS])
                    done = status in ("completed", "failed")
                    yield actions, {
                        "id": f"act_{short}_{i:06d}", "workspace_id": ws_id,
                        "infringement_id": f"inf_{short}_{rng.randrange(per.infringements):06d}",
                        "action_type": rng.choice(ACTION_TYPES), "status": status,
                        "priority": rng.choices(PRIORITIES, weights=(20, 50, 20, 10))[0],
                        "assigned_to": f"usr_{short}_analyst" if rng.random() < 0.7 else None,
                        "created_at": created,
                        "completed_at": min(created + timedelta(hours=rng.randrange(1, 240)), gen.as_of)
                        if done else None,
                        "result": _result(rng, status) if done else None}


def _batches(rows: Iterator[dict], size: int = BATCH_ROWS) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_value(value: object) -> object:
    if value is None:
        return "\\N"
    return value.isoformat() if isinstance(value, datetime) else value


def _insert(conn: Connection, table: Table, rows: list[dict]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    names = [c.name for c in table.columns]
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([_copy_value(row[c]) for c in names])
    buf.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.copy_expert(f"COPY {table.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)


def load_demo_data(
    engine: Engine, scale: str = "small", seed: int = 7, as_of: datetime | None = None,
    generated_workspaces: int = 0,
) -> dict[str, int]:
    """(Re)create the demo dataset in ``engine``'s database.

    Existing rows of the demo tables are deleted first, so the command can be
    run again. ``as_of`` (default: today, midnight UTC) is the end of the
    90-day history; ``generated_workspaces`` adds that many active
    workspaces with members and data. Returns the number of rows written per
    table. Raises ``KeyError`` for an unknown ``scale``, ``ValueError`` for a
    negative or too large (over 9,999) ``generated_workspaces``.
    """
    if not 0 <= generated_workspaces <= 9_999:
        raise ValueError(f"generated workspaces must be from 0 to 9,999, not {generated_workspaces}")
    sizes = SCALES[scale]
    if as_of is None:
        as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    gen = _Generator(seed, as_of)
    create_schema(engine)
    alert_counts, inf_counts, act_counts = _shares(sizes.alerts), _shares(sizes.infringements), _shares(sizes.actions)
    written: dict[str, int] = {}
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
        extra = _generated_reference_rows(generated_workspaces, as_of)
        for table, rows in _reference_rows(as_of).items():
            rows = rows + extra[table]
            _insert(conn, table, rows)
            written[table.name] = len(rows)
        for table, rows in (
            (alerts, _alert_rows(gen, alert_counts)),
            (infringements, _infringement_rows(gen, inf_counts, alert_counts)),
            (actions, _action_rows(gen, act_counts, inf_counts)),
        ):
            written[table.name] = 0
            for batch in _batches(rows):
                _insert(conn, table, batch)
                written[table.name] += len(batch)
        generated = _generated_rows(_Generator(seed + 1_000_003, as_of), generated_workspaces, sizes)
        for table, group in itertools.groupby(generated, key=lambda pair: pair[0]):
            for batch in _batches(row for _, row in group):
                _insert(conn, table, batch)
                written[table.name] += len(batch)
        written[audit_logs.name] = 0
        for batch in _batches(audit_log_rows(seed + 2_000_003, as_of, _audit_log_plan(sizes, generated_workspaces))):
            _insert(conn, audit_logs, batch)
            written[audit_logs.name] += len(batch)
    return written


def _audit_log_plan(sizes: Scale, generated_workspaces: int) -> list[tuple[str, list[str], list[str], int]]:
    """(workspace, members, brand names, rows) of every demo workspace, for ``audit_log_rows``."""
    plan = [(ws_id, [u for u, w, *_ in DEMO_USERS if w == ws_id], names, count)
            for (ws_id, _name, _status, _share, names), count in zip(DEMO_WORKSPACES, _shares(sizes.audit_logs),
                                                                       strict=True)]
    per = max(1, int(sizes.audit_logs * GENERATED_SHARE)) if sizes.audit_logs else 0
    for n in range(1, generated_workspaces + 1):
        short = f"gen{n:04d}"
        plan.append((generated_workspace_id(n), [f"usr_{short}_{role}" for role, _ in GENERATED_ROLES],
                     [f"Brand {n:04d}-0", f"Brand {n:04d}-1"], per))
    return plan
