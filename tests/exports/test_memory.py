"""Memory stays flat: tripling the rows of an export leaves its peak memory where it was.

Each export runs in a fresh child process (tests/memory_probe.py) that reports
its own peak RSS (VmHWM). The full export's file is larger than the asserted
ceiling on memory growth, so an exporter that held the result or the file in
memory would fail, and so would one whose memory grew with the row count.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from eclipse_exports.source.demo_data import create_schema
from tests.conftest import _fresh_database

ROWS = 300_000
THIRD_OF_THE_ROWS = "2026-01-02T03:46:41Z"  # detected_at runs one second per row from 2026-01-01T00:00:01Z
FLATNESS_MIB = 40
CEILING_MIB = 250
ROOT = Path(__file__).resolve().parents[2]

SQLITE_ROWS = f"""
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
INSERT INTO alerts (id, workspace_id, brand_id, title, url, severity, status, detected_at, monitor_source)
SELECT printf('alt_%09d', n), 'ws_mem', 'br_mem',
       printf('Counterfeit listing %d ', n) || substr(hex(randomblob(400)), 1, 800),
       printf('https://shop.example/item/%d?ref=', n) || hex(randomblob(16)),
       'high', 'new', datetime(1767225600 + n, 'unixepoch') || '.000000', 'marketplace_scan'
FROM g
"""
POSTGRES_ROWS = f"""
INSERT INTO alerts (id, workspace_id, brand_id, title, url, severity, status, detected_at, monitor_source)
SELECT 'alt_' || lpad(n::text, 9, '0'), 'ws_mem', 'br_mem',
       'Counterfeit listing ' || n || ' ' || repeat(md5(n::text), 24) || substr(md5((n * 3)::text), 1, 12),
       'https://shop.example/item/' || n || '?ref=' || md5((n * 7)::text),
       'high', 'new', timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second', 'marketplace_scan'
FROM generate_series(1, {ROWS}) AS n
"""


def _seed(url: str, rows_sql: str) -> str:
    engine = create_engine(url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces VALUES ('ws_mem', 'Memory', 'active', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO users VALUES ('u_mem', 'mem@mail.example', 'Mem')"))
        conn.execute(text("INSERT INTO workspace_members VALUES ('ws_mem', 'u_mem', 'owner')"))
        conn.execute(text("INSERT INTO brands VALUES ('br_mem', 'ws_mem', 'Memory Brand')"))
        conn.execute(text(rows_sql))
    engine.dispose()
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_source(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return _seed(f"sqlite:///{tmp_path_factory.mktemp('memory') / 'big.db'}", SQLITE_ROWS)
    return _seed(_fresh_database(request.getfixturevalue("postgres_url"), "memory"), POSTGRES_ROWS)


def _probe(source: str, s3_endpoint: str, bucket: str, redis_url: str, fmt: str, filters: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.memory_probe", source, s3_endpoint, bucket, redis_url, fmt, json.dumps(filters)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_memory_stays_flat_as_rows_triple(big_source, s3_endpoint, bucket, redis_url, fmt):
    third = _probe(big_source, s3_endpoint, bucket, redis_url, fmt, {"to": THIRD_OF_THE_ROWS})
    full = _probe(big_source, s3_endpoint, bucket, redis_url, fmt, {})
    assert third["rows"] == ROWS // 3 and full["rows"] == ROWS
    growth = full["peak_mib"] - full["baseline_mib"]
    file_mib = full["bytes"] / 2**20
    assert full["peak_mib"] - third["peak_mib"] < FLATNESS_MIB, (third, full)
    assert growth < CEILING_MIB < file_mib, f"export grew the process by {growth:.0f} MiB for a {file_mib:.0f} MiB file"
