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
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetObservation,
    DagsterInstance,
    RunsFilter,
    build_sensor_context,
)
from dagster._core.scheduler.instigation import InstigatorStatus
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from eclipse_exports.source.demo_data import load_demo_data
from tests.conftest import _fresh_database
from tests.readback import read_rows
from tests.run_workers import RunWorkerGroup

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
        "ECLIPSE_RUN_QUEUE": f"runs-{home.name}",
    }
    from eclipse_exports.storage.client import make_s3_client

    make_s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    log = open(home / "daemon.log", "wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    workers = RunWorkerGroup(env, home / "workers.log", concurrency=2).start()
    yield {"home": home, "database_url": database_url, "redis_url": redis_url}
    workers.stop()
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


def instigator(instance, name: str):
    return next(s for s in instance.all_instigator_state() if s.instigator_name == name)


def test_queue_positions_queue_health_and_metrics_on_the_live_deployment(deployment, monkeypatch):
    """A burst queues behind the run limits with a place each; the queue's figures and metrics count it exactly;
    the lag check turns red while the request sensor is stopped and green once it reads again."""
    from eclipse_exports.assets.queue_health import FAILURE_CHECK, LAG_CHECK, QUEUE_ASSET
    from eclipse_exports.observability.metrics import exposition
    from eclipse_exports.resources import RedisResource
    from eclipse_exports.sensors import export_request_queue_sensor
    from tests.live_dagster import send_requests, statuses, wait_for_terminal, wait_until

    client = redis.Redis.from_url(deployment["redis_url"])
    instance = DagsterInstance.from_config(str(deployment["home"]))

    def observe() -> tuple[dict, dict]:
        result = export_request_queue_sensor(build_sensor_context(
            instance=instance, resources={"redis": RedisResource(url=deployment["redis_url"])}))
        [observation] = [e for e in result.asset_events if isinstance(e, AssetObservation)]
        assert observation.asset_key == QUEUE_ASSET
        checks = {e.check_name: e for e in result.asset_events if isinstance(e, AssetCheckEvaluation)}
        return {k: v.value for k, v in observation.metadata.items()}, checks

    def jobs_total(text: bytes) -> float:
        return sum(s.value for f in text_string_to_metric_families(text.decode()) for s in f.samples
                   if s.name == "eclipse_exports_jobs_total" and s.labels["status"] == "completed")

    before, _ = observe()
    completed_before = jobs_total(exposition(client))
    # One workspace: two run at a time (its concurrency limit), the rest wait with a place each. A burst of 20
    # keeps jobs waiting long enough for the position sensor's tick to see them even when runs are quick
    # (a burst of 4 drained within one tick in CI).
    size = 20
    burst = {f"burst-{n}": {"id": f"burst-{n}", "workspaceId": "ws_acme", "userId": "usr_acme_owner",
                            "resourceType": "alerts", "format": "csv"} for n in range(size)}
    send_requests(client, burst.values())

    def placed():  # queued jobs hold the places 1..k, none twice
        found = {j: int(f["queuePosition"]) for j, f in statuses(client, burst).items()
                 if f.get("status") == "queued" and f.get("queuePosition")}
        return found if len(found) >= 2 and sorted(found.values()) == list(range(1, len(found) + 1)) else None

    places = wait_until(placed, 120, "queued jobs with their places", every=0.2)
    final = wait_for_terminal(client, burst, timeout=600)
    assert {f["status"] for f in final.values()} == {"completed"}
    assert not any("queuePosition" in f or "etaSeconds" in f for f in final.values())

    after, checks = observe()
    assert after["completed_last_hour"] - before["completed_last_hour"] == size
    assert after["alerts_completed_last_hour"] - before.get("alerts_completed_last_hour", 0) == size
    assert after["lag_entries"] == 0 and after["runs_queued"] == 0
    assert 0 < after["p50_xadd_to_completed_seconds"] <= after["p95_xadd_to_completed_seconds"] < 300
    assert checks[LAG_CHECK].passed and checks[FAILURE_CHECK].passed
    assert jobs_total(exposition(client)) - completed_before == size

    # The request sensor stopped: the unread request ages past twice the limit and the check turns red.
    monkeypatch.setenv("ECLIPSE_QUEUE_LAG_ALERT_SECONDS", "1")
    sensor_state = instigator(instance, "export_request_sensor")
    instance.update_instigator_state(sensor_state.with_status(InstigatorStatus.STOPPED))
    try:
        time.sleep(6)  # a tick under way ends
        send_requests(client, [{"id": "late", "workspaceId": "ws_acme", "userId": "usr_acme_owner",
                                "resourceType": "alerts", "format": "csv"}])
        time.sleep(2.5)
        stopped, checks = observe()
        assert stopped["lag_entries"] == 1 and stopped["oldest_unread_age_seconds"] > 2
        assert not checks[LAG_CHECK].passed and checks[LAG_CHECK].severity == AssetCheckSeverity.ERROR
    finally:
        instance.update_instigator_state(sensor_state)
    wait_until(lambda: statuses(client, ["late"])["late"].get("status") in ("queued", "running", "completed"), 60,
               "the late request to be read")
    read, checks = observe()
    assert read["lag_entries"] == 0 and checks[LAG_CHECK].passed
    wait_for_terminal(client, ["late"], timeout=120)  # leaves the deployment idle for the next test
    print(f"\nplaces while queued: {sorted(places.values())}; figures after the burst: {after}")
