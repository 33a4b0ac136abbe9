"""The everyday commands answer like a command-line tool: they load neither Dagster nor the data stack.

Each command runs in a fresh process, as a user's shell starts it, against a real Redis and S3; the test
reads what it imported. ``bench/cli_latency.py`` prints the times.
"""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from eclipse_exports.cli.maintenance import DEMO_SCALES
from eclipse_exports.source.demo_data import SCALES

NEVER = ("dagster", "pyarrow", "pandas", "polars", "sqlalchemy", "jinja2", "boto3", "numpy")
PROBE = """
import json, sys
from eclipse_exports.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\nLOADED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(args: list[str], env: dict[str, str]) -> tuple[set[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
    assert "LOADED " in proc.stdout, proc.stderr
    return set(json.loads(proc.stdout.rsplit("LOADED ", 1)[1])), proc.stdout + proc.stderr


@pytest.fixture
def product_env(redis_url, redis_client, s3_endpoint, bucket, storage, tmp_path):
    now = datetime.now(UTC)
    key = storage.export_key("ws_acme", "alerts", "imports-job", "csv", now)
    storage.client.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n")
    storage.client.put_object(Bucket=bucket, Key=storage.report_key("ws_acme", datetime(2026, 11, 23).date()),
                              Body=b"<html></html>")
    redis_client.hset("eclipse:exports:job:imports-job", mapping={
        "id": "imports-job", "workspaceId": "ws_acme", "userId": "u", "resourceType": "alerts", "format": "csv",
        "status": "completed", "rowCount": "1", "byteSize": "5", "filePath": key,
        "expiresAt": (now + timedelta(hours=1)).isoformat()})
    return {**os.environ, "ECLIPSE_REDIS_URL": redis_url, "AWS_ENDPOINT_URL": s3_endpoint, "ECLIPSE_S3_BUCKET": bucket,
            "ECLIPSE_S3_PREFIX": "tenant-files", "ECLIPSE_DATA_DIR": str(tmp_path)}


@pytest.mark.parametrize("args, expected", [
    (["--help"], "Commands:"),
    (["status", "--help"], "Show a job's status"),
    (["status", "imports-job"], "completed"),
    (["jobs", "--workspace", "ws_acme"], "no jobs"),
    (["url", "imports-job"], "X-Amz-Signature"),
    (["report-url", "ws_acme", "2026-11-23"], "X-Amz-Signature"),
    (["dead-letters"], "no dead letters"),
    (["metrics"], "eclipse_exports_queue_entries"),
])
def test_everyday_commands_load_no_dagster_and_no_data_stack(product_env, args, expected):
    loaded, output = loaded_by(args, product_env)
    assert expected in output, output
    assert not loaded & set(NEVER), f"`eclipse-exports {' '.join(args)}` imported {sorted(loaded & set(NEVER))}"


def test_the_cli_offers_the_demo_data_scales_that_exist():
    assert DEMO_SCALES == tuple(sorted(SCALES))
