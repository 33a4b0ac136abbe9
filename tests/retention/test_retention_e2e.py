"""Retention end to end: `dagster dev` (webserver, daemon, code server) in a subprocess tree, faults for real.

- A run worker is SIGKILLed by PID mid-upload (uploads are slowed by the fault proxy so the kill lands
  between parts); after the run-failure sensor no incomplete upload remains and the job's status has a
  readable cause and no file fields.
- A workspace turns ``deleted`` in the source database; the purge sensor removes its files and its
  partition; the UI's asset, partitions and backfill pages, opened in Chromium, get no GraphQL error.
- The clean-up job launched through GraphQL shows its summary table in the run's events.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis
from dagster import DagsterInstance, RunsFilter
from dagster._core.launcher import WorkerStatus
from sqlalchemy import create_engine

from eclipse_exports.local.services import free_port
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from tests.run_workers import RunWorkerGroup
from tests.s3_fault_proxy import S3FaultProxy

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "retention-e2e"
BIG_ROWS = 30_000  # ~27 MB of CSV: six 5 MiB parts
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.e2e


def add_big_alerts(path: Path) -> None:
    with sqlite3.connect(path) as db:
        brand = db.execute("SELECT id FROM brands WHERE workspace_id = 'ws_acme' ORDER BY id LIMIT 1").fetchone()[0]
        db.execute(f"""
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {BIG_ROWS})
            INSERT INTO alerts (id, workspace_id, brand_id, title, url, severity, status, detected_at, monitor_source)
            SELECT printf('big_%06d', n), 'ws_acme', ?, printf('Listing %d ', n) || hex(randomblob(400)),
                   printf('https://shop.example/%d', n), 'high', 'new',
                   datetime(1767225600 + n, 'unixepoch') || '.000000', 'marketplace_scan'
            FROM g""", (brand,))


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_url, s3_endpoint):
    home = tmp_path_factory.mktemp("retention_home")
    (home / "dagster.yaml").write_text((ROOT / "instance" / "dagster.yaml").read_text())
    source = home / "eclipse.db"
    load_demo_data(create_engine(f"sqlite:///{source}"), "tiny", seed=5)
    add_big_alerts(source)
    make_s3_client(s3_endpoint).create_bucket(Bucket=BUCKET)
    proxy = S3FaultProxy(s3_endpoint).start()
    port = free_port()
    own_redis = redis_url.rsplit("/", 1)[0] + "/3"
    env = {**os.environ, "DAGSTER_HOME": str(home), "ECLIPSE_DATABASE_URL": f"sqlite:///{source}",
           "ECLIPSE_REDIS_URL": own_redis, "ECLIPSE_S3_BUCKET": BUCKET, "AWS_ENDPOINT_URL": proxy.url,
           "ECLIPSE_SENSOR_LONG_POLL_MS": "1000", "ECLIPSE_PURGE_INTERVAL_SECONDS": "5",
           # No scheduled clean-up during the test: moto dates every upload 2010, so it would abort live ones.
           "ECLIPSE_CLEANUP_CRON": "0 0 1 1 *", "ECLIPSE_RUN_QUEUE": f"runs-{home.name}"}
    workers = RunWorkerGroup(env, home / "workers.log", concurrency=2).start(wait=False)
    log = open(home / "dagster-dev.log", "wb")
    dev = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"),
                            "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = redis.Redis.from_url(own_redis)
    client.flushdb()
    try:
        wait_for(lambda: _get(url + "/server_info"), 180, "the webserver")
        yield {"url": url, "home": home, "source": source, "proxy": proxy, "redis": client, "dev": dev,
               "storage": ExportStorage(make_s3_client(s3_endpoint), BUCKET)}
    finally:
        workers.stop()
        os.killpg(dev.pid, signal.SIGINT)  # dagster dev stops its daemon and code server cleanly on SIGINT
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        log.close()
        proxy.stop()
        client.flushdb()


def _get(url: str) -> bytes | None:
    try:
        return urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        return None


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def graphql(live, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(live["url"] + "/graphql", data=json.dumps(
        {"query": query, "variables": variables or {}}).encode(), headers={"Content-Type": "application/json"})
    body = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def status(live, job_id: str) -> dict:
    return {k.decode(): v.decode() for k, v in live["redis"].hgetall(f"eclipse:exports:job:{job_id}").items()}


def request_export(live, job_id: str, workspace: str, user: str, resource="alerts", fmt="csv") -> None:
    live["redis"].xadd("eclipse:exports:requests", {"payload": json.dumps(
        {"id": job_id, "workspaceId": workspace, "userId": user, "resourceType": resource, "format": fmt})})


def export_worker(live, run_id: str) -> psutil.Process | None:
    """The run's worker process, as the instance's run launcher sees it (the pid the worker recorded).

    Not "whichever process talks to S3": after a failure the code server does too (the run-failure sensor aborts
    the upload), and killing it would take the code location down rather than the export.
    """
    with DagsterInstance.from_config(str(live["home"])) as instance:
        run = instance.get_run_by_id(run_id)
        health = instance.run_launcher.check_run_worker_health(run) if run else None
    if health is None or health.run_worker_id is None or health.status != WorkerStatus.RUNNING:
        return None
    return psutil.Process(int(health.run_worker_id))


def parts_uploaded(storage: ExportStorage, job_id: str) -> int:
    for upload in storage.iter_uploads(""):
        if upload["Key"].endswith(f"-alerts-{job_id}.csv"):
            return len(storage.client.list_parts(Bucket=BUCKET, Key=upload["Key"],
                                                 UploadId=upload["UploadId"]).get("Parts", []))
    return 0


def test_a_worker_killed_mid_upload_leaves_no_upload_and_a_readable_failure(live):
    """Each attempt's worker is SIGKILLed mid-upload: Dagster's run retries (2) relaunch it and the job is queued
    again each time; after the last, the job fails with a readable cause and nothing is left in S3."""
    storage, proxy = live["storage"], live["proxy"]
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=2.0)
    run_ids: list[str] = []
    try:
        request_export(live, "e2e-killed", "ws_acme", "usr_acme_analyst")
        for _attempt in range(3):
            wait_for(lambda: (s := status(live, "e2e-killed")).get("status") == "running"
                     and s.get("runId") not in run_ids and parts_uploaded(storage, "e2e-killed") >= 1, 240,
                     "the next attempt's first uploaded part")
            running = status(live, "e2e-killed")
            worker = wait_for(lambda run_id=running["runId"]: export_worker(live, run_id), 30, "the worker")
            assert int(running["rowCount"]) >= 30_000
            run_ids.append(running["runId"])
            os.kill(worker.pid, signal.SIGKILL)
            if len(run_ids) < 3:
                # The failed attempt's job goes back to queued (its upload aborted) until the retry starts.
                wait_for(lambda: status(live, "e2e-killed").get("status") == "queued"
                         or status(live, "e2e-killed").get("runId") not in run_ids, 60, "the job to be queued again")
        failed = wait_for(lambda: (s := status(live, "e2e-killed")).get("status") == "failed" and s, 120,
                          "the job to fail")
    finally:
        proxy.remove(slow)
    assert failed["errorCode"] == "export_failed" and failed["runId"] == run_ids[-1]
    assert failed["error"].startswith("the export worker stopped unexpectedly (signal 9, SIGKILL)"), failed
    assert not {"rowCount", "byteSize", "filePath", "downloadUrl", "expiresAt"} & set(failed)
    assert storage.pending_multipart_uploads() == []
    assert [o["Key"] for o in storage.iter_objects("") if "e2e-killed" in o["Key"]] == []
    with DagsterInstance.from_config(str(live["home"])) as instance:
        runs = {r.run_id: r for r in instance.get_runs(RunsFilter(tags={"eclipse/job_id": "e2e-killed"}))}
    assert set(runs) == set(run_ids)
    assert [runs[r].tags.get("dagster/will_retry") for r in run_ids] == ["true", "true", "false"]


ASSET_EXISTS = "query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { __typename } }"


def add_finished_backfill(live, partitions: list[str]) -> str:
    """Store a completed asset backfill of alerts_export over ``partitions``, as the daemon leaves one."""
    from dagster import AssetKey
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    from eclipse_exports.definitions import defs

    with DagsterInstance.from_config(str(live["home"])) as instance:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="e2ebackfill", asset_graph=defs.resolve_asset_graph(), partition_names=partitions,
            asset_selection=[AssetKey("alerts_export")], backfill_timestamp=time.time(), tags={},
            dynamic_partitions_store=instance, all_partitions=False, title=None, description=None, run_config=None)
        instance.add_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    return backfill.backfill_id


def python_errors(data) -> list[str]:
    """The messages of every ``PythonError`` object inside a GraphQL answer's data."""
    if isinstance(data, dict):
        own = [str(data.get("message"))] if data.get("__typename") == "PythonError" else []
        return own + [m for value in data.values() for m in python_errors(value)]
    if isinstance(data, list):
        return [m for value in data for m in python_errors(value)]
    return []


def graphql_errors_on_pages(live, paths: list[str]) -> tuple[list[str], int]:
    """Open each UI page in Chromium; return GraphQL errors seen (top-level or PythonError) and responses checked."""
    from playwright.sync_api import sync_playwright

    errors, checked = [], [0]

    def inspect(route):
        # Fetched here and handed on, so every GraphQL answer is read whole before the page sees it.
        response = route.fetch()
        operation = (route.request.post_data_json or {}).get("operationName")
        try:
            body = response.json()
        except ValueError:
            errors.append(f"{operation}: not JSON ({response.status})")
        else:
            checked[0] += 1
            errors.extend(f"{operation}: {err.get('message')}" for err in body.get("errors") or [])
            errors.extend(f"{operation}: {message}" for message in python_errors(body.get("data")))
        route.fulfill(response=response)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/graphql*", inspect)
        for path in paths:
            page.goto(live["url"] + path, wait_until="networkidle", timeout=90_000)
            assert page.get_by_text("Unexpected GraphQL error").count() == 0, path
        browser.close()
    return errors, checked[0]


def test_a_deleted_workspace_is_purged_and_the_ui_still_loads(live):
    storage, redis_client = live["storage"], live["redis"]
    request_export(live, "e2e-globex", "ws_globex", "usr_globex_admin")
    neighbour = storage.export_key("ws_initech", "alerts", "e2e-neighbour", "csv", datetime.now(UTC))
    storage.client.put_object(Bucket=BUCKET, Key=neighbour, Body=b"id\n")
    wait_for(lambda: status(live, "e2e-globex").get("status") == "completed", 180, "e2e-globex to complete")
    # A finished backfill over both partitions (the daemon's 30 s iterations are too slow for a test; a backfill
    # still running keeps the partition, see tests/retention/test_purge.py): its page must load once one partition
    # is gone.
    backfill_id = add_finished_backfill(live, ["ws_globex", "ws_initech"])
    globex_prefix = storage.workspace_prefix("ws_globex")
    others = {o["Key"] for o in storage.iter_objects("") if not o["Key"].startswith(globex_prefix)}
    assert any("/ws_initech/" in k for k in others) and list(storage.iter_objects(globex_prefix))

    with sqlite3.connect(live["source"]) as db:
        db.execute("UPDATE workspaces SET status = 'deleted' WHERE id = 'ws_globex'")
    wait_for(lambda: redis_client.sismember("eclipse:exports:purged-workspaces", "ws_globex"), 120, "the purge")
    assert list(storage.iter_objects(globex_prefix)) == []
    assert {o["Key"] for o in storage.iter_objects("")} >= others
    assert status(live, "e2e-globex")["status"] == "expired"
    with DagsterInstance.from_config(str(live["home"])) as instance:
        wait_for(lambda: "ws_globex" not in instance.get_dynamic_partitions("workspaces"), 120,
                 "the partition to go")
        assert {"ws_acme", "ws_initech"} <= set(instance.get_dynamic_partitions("workspaces"))

    # The export asset with the purged partition's history, one without, and the workspace x week report
    # where it exists (upstream issue 33910).
    assets = [a for a in ("alerts_export", "executive_report")
              if graphql(live, ASSET_EXISTS, {"path": [a]})["assetNodeOrError"]["__typename"] == "AssetNode"]
    pages = [p for a in assets for p in (f"/assets/{a}", f"/assets/{a}?view=partitions")]
    pages.append("/assets/actions_export?view=partitions")  # one never materialized for the purged workspace
    errors, checked = graphql_errors_on_pages(live, [*pages, "/overview/backfills", f"/runs/b/{backfill_id}"])
    assert errors == [] and checked >= len(pages)
    # Whatever the daemon made of the backfill meanwhile, nothing came back under the purged prefix.
    assert list(storage.iter_objects(globex_prefix)) == []


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_EVENTS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status
  eventConnection { events { __typename ... on ExecutionStepOutputEvent { metadataEntries {
    label __typename ... on TableMetadataEntry { table { records } } ... on IntMetadataEntry { intValue } } } } } }
  } }"""


def test_the_cleanup_run_shows_its_summary_in_the_ui(live):
    before = {o["Key"] for o in live["storage"].iter_objects("")}
    as_of = (datetime.now(UTC) + timedelta(hours=73)).isoformat()
    launched = graphql(live, LAUNCH, {"params": {
        "selector": {"repositoryLocationName": "eclipse_exports", "repositoryName": "__repository__",
                     "jobName": "export_cleanup_job"},
        "runConfigData": {"ops": {"export_cleanup": {"config": {"as_of": as_of}}}}}})
    run_id = launched["launchRun"]["run"]["runId"]
    run = wait_for(lambda: (r := graphql(live, RUN_EVENTS, {"id": run_id})["runOrError"])["status"]
                   in ("SUCCESS", "FAILURE") and r, 180, "the clean-up run")
    assert run["status"] == "SUCCESS"
    [output] = [e for e in run["eventConnection"]["events"] if e["__typename"] == "ExecutionStepOutputEvent"]
    entries = {m["label"]: m for m in output["metadataEntries"]}
    rows = [json.loads(r) for r in entries["summary"]["table"]["records"]]
    assert {r["workspace"] for r in rows} >= {"ws_initech"} and entries["files_removed"]["intValue"] >= len(before)
    assert not before & {o["Key"] for o in live["storage"].iter_objects("")}
