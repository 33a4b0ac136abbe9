"""deploy/source-database-grants.sql gives the read-only user what an export needs and nothing more.

The file is run with psql against a fresh database holding the demo data (the session's throwaway
PostgreSQL cluster), then, connected as that user: every table of the interface reads, an export of
each resource completes, and writes are refused.
"""

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from eclipse_exports.local.services import _pg_bin
from eclipse_exports.source.demo_data import load_demo_data
from tests.conftest import _fresh_database

GRANTS = Path(__file__).resolve().parents[2] / "deploy" / "source-database-grants.sql"
TABLES = ("workspaces", "users", "workspace_members", "brands", "alerts", "infringements", "actions")


@pytest.fixture(scope="module")
def readonly_url(postgres_url):
    owner_url = make_url(_fresh_database(postgres_url, "grants_source"))
    load_demo_data(create_engine(owner_url), "tiny", seed=3)
    psql_url = owner_url.set(drivername="postgresql").render_as_string(hide_password=False)
    for _ in range(2):  # safe to run again
        result = subprocess.run([_pg_bin("psql"), psql_url, "-v", "ON_ERROR_STOP=1", "-v", "db=grants_source",
                                 "-v", "schema=public", "-v", "password=s3cret&x", "-f", str(GRANTS)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    return owner_url.set(username="eclipse_readonly", password="s3cret&x")


def test_the_read_only_user_reads_every_table_and_writes_none(readonly_url):
    engine = create_engine(readonly_url)
    with engine.connect() as conn:
        counts = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in TABLES}
    assert counts["alerts"] > 0 and counts["workspaces"] >= 4
    for statement in ("DELETE FROM alerts", "CREATE TABLE mine (id int)", "UPDATE users SET name = 'x'"):
        with engine.connect() as conn, pytest.raises(DBAPIError):
            conn.execute(text(statement))
    engine.dispose()


def test_an_export_snapshot_reads_as_the_read_only_user(readonly_url):
    from eclipse_exports.models import ResourceType
    from eclipse_exports.source.queries import count_query
    from eclipse_exports.source.reader import export_snapshot

    engine = create_engine(readonly_url)
    with export_snapshot(engine) as snapshot:
        counts = {resource: snapshot.count(count_query(resource, "ws_acme"))
                  for resource in (ResourceType.ALERTS, ResourceType.INFRINGEMENTS, ResourceType.ACTIONS)}
    assert all(counts.values()), counts
    engine.dispose()
