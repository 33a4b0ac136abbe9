"""End to end: the Dagster daemon and code location in subprocesses, requests XADDed with a plain Redis client.

Nothing of the project's producer is used here: payloads are raw JSON, as the
Eclipse web app sends them. Files are fetched over HTTP from their presigned
URLs and compared with the source database.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from dagster import DagsterInstance, RunsFilter
from sqlalchemy import create_engine, text

from eclipse_exports.source.demo_data import load_demo_data
from tests.conftest import _fresh_database
from tests.readback import read_rows

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_url, redis_url, s3_endpoint):
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
    database_url = _fresh_database(postgres_url, "e2e")
    load_demo_data(create_engine(database_url), "tiny", seed=3)
    bucket = "e2e-exports"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ECLIPSE_DATABASE_URL": database_url,
        "ECLIPSE_REDIS_URL": redis_url,
        "ECLIPSE_S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "ECLIPSE_SENSOR_LONG_POLL_MS": "4000",
    }
    from eclipse_exports.storage.client import make_s3_client

    make_s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    log = open(home / "daemon.log", "wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield {"home": home, "database_url": database_url, "redis_url": redis_url}
    os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
    log.close()


def wait_for_status(client, job_id, wanted, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    fields: dict = {}
    while time.monotonic() < deadline:
        fields = {k.decode(): v.decode() for k, v in client.hgetall(f"eclipse:exports:job:{job_id}").items()}
        if fields.get("status") in wanted:
            return fields
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {wanted} in {timeout}s; last status: {fields}")


def test_requests_flow_from_stream_to_files_in_s3(deployment):
    client = redis.Redis.from_url(deployment["redis_url"])
    requests = {
        "e2e-alerts": {"workspaceId": "ws_acme", "userId": "usr_acme_viewer", "resourceType": "alerts",
                       "format": "csv"},
        "e2e-actions": {"workspaceId": "ws_globex", "userId": "usr_globex_admin", "resourceType": "actions",
                        "format": "json", "filters": {"status": ["completed", "failed"]}},
        "e2e-forbidden": {"workspaceId": "ws_acme", "userId": "usr_acme_viewer", "resourceType": "infringements",
                          "format": "csv"},
    }
    for job_id, body in requests.items():
        client.xadd("eclipse:exports:requests", {"payload": json.dumps({"id": job_id, **body})})

    forbidden = wait_for_status(client, "e2e-forbidden", {"rejected", "completed", "failed"})
    assert (forbidden["status"], forbidden["errorCode"]) == ("rejected", "forbidden")

    alerts = wait_for_status(client, "e2e-alerts", {"completed", "failed", "rejected"})
    assert alerts["status"] == "completed", alerts
    engine = create_engine(deployment["database_url"])
    with engine.connect() as conn:
        db_ids = list(conn.execute(text(
            "SELECT id FROM alerts WHERE workspace_id = 'ws_acme' ORDER BY detected_at, id")).scalars())
        db_actions = list(conn.execute(text(
            "SELECT id FROM actions WHERE workspace_id = 'ws_globex' AND status IN ('completed', 'failed') "
            "ORDER BY created_at, id")).scalars())
    rows = read_rows(urllib.request.urlopen(alerts["downloadUrl"]).read(), "csv")
    assert [r["id"] for r in rows] == db_ids and len(db_ids) == int(alerts["rowCount"]) > 0
    assert alerts["filePath"].startswith("workspaces/ws_acme/exports/")

    actions = wait_for_status(client, "e2e-actions", {"completed", "failed", "rejected"})
    assert actions["status"] == "completed", actions
    rows = read_rows(urllib.request.urlopen(actions["downloadUrl"]).read(), "json")
    assert [r["id"] for r in rows] == db_actions and {r["status"] for r in rows} <= {"completed", "failed"}

    instance = DagsterInstance.from_config(str(deployment["home"]))
    for job_id in ("e2e-alerts", "e2e-actions"):
        runs = instance.get_runs(RunsFilter(tags={"eclipse/job_id": job_id}))
        assert len(runs) == 1 and runs[0].run_id == (alerts if job_id == "e2e-alerts" else actions)["runId"]
    assert instance.get_runs(RunsFilter(tags={"eclipse/job_id": "e2e-forbidden"})) == []
    assert "ws_acme" in instance.get_dynamic_partitions("workspaces")
