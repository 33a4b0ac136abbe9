"""The audit_logs resource end to end on SQLite and PostgreSQL with the seeded demo data: every format read back,
the verb, prefix and actor filters, owners and admins only, details as a JSON object in JSON and JSONL."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from eclipse_exports.exports.run import ExportFailed, ExportLimits, run_export
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.source.demo_audit_logs import audit_log_rows
from eclipse_exports.source.demo_data import SCALES, _audit_log_plan, load_demo_data
from tests.conftest import _fresh_database
from tests.readback import read_rows

AS_OF = datetime(2026, 11, 30, tzinfo=UTC)
COLUMNS = ["id", "occurred_at", "actor_email", "action", "target_type", "target_id", "ip_address", "user_agent",
           "details"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request, tmp_path_factory):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'eclipse.db'}")
    else:
        engine = create_engine(_fresh_database(request.getfixturevalue("postgres_url"), "audit_demo"))
    load_demo_data(engine, "tiny", seed=7, as_of=AS_OF)
    yield engine
    engine.dispose()


def acme_rows() -> list[dict]:
    """The seeded ws_acme audit log, independently of the database: same seed, same rows."""
    emails = {"usr_acme_owner": "acme_owner@acme.example", "usr_acme_analyst": "acme_analyst@acme.example",
              "usr_acme_viewer": "acme_viewer@acme.example"}
    rows = [r for r in audit_log_rows(7 + 2_000_003, AS_OF, _audit_log_plan(SCALES["tiny"], 0))
            if r["workspace_id"] == "ws_acme"]
    return [{**r, "actor_email": emails.get(r["actor_id"])} for r in sorted(rows, key=lambda r: (r["occurred_at"],
                                                                                                  r["id"]))]


def export(demo, storage, redis_client, user: str, fmt: str, filters: dict | None = None, job: str = "aud-1"):
    request = ExportRequest.from_payload(json.dumps({
        "id": job, "workspaceId": "ws_acme", "userId": user, "resourceType": "audit_logs", "format": fmt,
        "filters": filters or {}}))
    result = run_export(request, engine=demo, storage=storage, status=JobStatusStore(redis_client),
                        limits=ExportLimits(), run_id="r-1")
    body = storage.client.get_object(Bucket=storage.bucket, Key=result.key)["Body"].read()
    return result, read_rows(body, fmt)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "json"])
def test_an_owner_exports_the_whole_audit_log_in_every_format(demo, storage, redis_client, fmt):
    expected = acme_rows()
    result, rows = export(demo, storage, redis_client, "usr_acme_owner", fmt, job=f"aud-{fmt}")
    assert result.verification.passed and result.row_count == len(expected) > 400
    assert list(rows[0]) == COLUMNS
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    by_id = {r["id"]: r for r in expected}
    for row in rows:
        source = by_id[row["id"]]
        assert row["action"] == source["action"] and row["actor_email"] == source["actor_email"]
        assert (row["details"] if fmt in ("csv", "parquet") else json.dumps(row["details"], sort_keys=True)) \
            == source["details"]
        if fmt == "parquet":
            assert row["occurred_at"] == source["occurred_at"]
        else:
            assert row["occurred_at"] == source["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt in ("json", "jsonl"):
        assert all(isinstance(r["details"], dict) for r in rows)
    assert any(r["actor_email"] is None for r in rows)  # the system's own entries


def test_verbs_prefixes_actors_and_dates_filter_the_rows(demo, storage, redis_client):
    expected = [r for r in acme_rows() if (r["action"] == "auth.login" or r["action"].startswith("member."))
                and r["actor_id"] == "usr_acme_owner" and r["occurred_at"] >= datetime(2026, 10, 1, tzinfo=UTC)]
    _, rows = export(demo, storage, redis_client, "usr_acme_owner", "jsonl", {
        "action": ["member.*", "auth.login"], "actor": ["usr_acme_owner"], "from": "2026-10-01T00:00:00Z"})
    assert expected and [r["id"] for r in rows] == [r["id"] for r in expected]
    # `member_x.*` must not match `member.added` through LIKE's `_` wildcard; nothing matches it.
    _, none = export(demo, storage, redis_client, "usr_acme_owner", "csv", {"action": ["membe_.*"]}, job="aud-2")
    assert none == []
    with demo.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_logs WHERE action LIKE 'membe_.%'")).scalar() > 0


@pytest.mark.parametrize("user", ["usr_acme_analyst", "usr_acme_viewer"])
def test_analysts_and_viewers_are_refused(demo, storage, redis_client, user):
    with pytest.raises(ExportFailed) as refused:
        export(demo, storage, redis_client, user, "csv")
    assert refused.value.code is ErrorCode.FORBIDDEN and "may not export audit_logs" in str(refused.value)
    assert list(storage.iter_objects(storage.workspaces_prefix())) == []
