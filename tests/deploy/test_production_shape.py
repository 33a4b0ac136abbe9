"""End to end on the production shape: PostgreSQL-backed Dagster, code server, daemon and webserver as three processes.

The three processes are started exactly as an operator does, by
``deploy/dagster-service.sh`` with ``deploy/dagster.yaml`` and
``deploy/workspace.yaml`` and nothing but environment variables; Dagster's
storage is a database of its own in the session's throwaway PostgreSQL
cluster, compute logs go to the test S3 server (moto). Then: raw XADD
requests complete with their files in S3, a backfill launched through the
webserver's GraphQL API (as the UI does) completes, and the sensors tick and
the schedules evaluate (ticks read from the instance in PostgreSQL).
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.scheduler.instigation import TickStatus
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from eclipse_exports.local.services import free_port, wait_for_port
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import make_s3_client
from tests.conftest import _fresh_database
from tests.readback import read_rows

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "deploy" / "dagster-service.sh"
EXPORT_BUCKET, LOGS_BUCKET = "prod-exports", "prod-dagster-logs"
DONE = {"completed", "failed", "rejected"}
pytestmark = pytest.mark.e2e


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"GraphQL answered {exc.code}: {exc.read()[:2000]!r}") from None
    assert "errors" not in body, body
    return body["data"]


def _wait_for_webserver(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the webserver exited"
        try:
            data = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                                  "locationOrLoadError { __typename } } } } }")
            entries = data["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["locationOrLoadError"] and \
                    entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the webserver did not load the code location")


def _wait_until_ready(instance: DagsterInstance, redis_url: str, processes: dict[str, subprocess.Popen],
                      timeout: float = 180) -> None:
    """Wait as an operator would before the first request: a run-worker group reports itself alive (its pool and
    its own working folder are made by then) and workspace_partitions_sensor has added the demo workspaces."""
    from eclipse_exports.queue.run_workers import RunWorkerRegistry

    registry = RunWorkerRegistry(redis.Redis.from_url(redis_url))
    deadline = time.monotonic() + timeout
    while not (registry.live_nodes() and
               {"ws_acme", "ws_globex", "ws_initech"} <= set(instance.get_dynamic_partitions("workspaces"))):
        exited = {role: p.returncode for role, p in processes.items() if p.poll() is not None}
        assert not exited, f"deployment processes exited: {exited}"
        assert time.monotonic() < deadline, "no live run worker or no workspaces partitions after " \
                                            f"{timeout:.0f}s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def production(tmp_path_factory, postgres_url, redis_url, s3_endpoint):
    base = tmp_path_factory.mktemp("production")
    storage_url = make_url(_fresh_database(postgres_url, "dagster_production"))
    source_url = _fresh_database(postgres_url, "production_source")
    load_demo_data(create_engine(source_url), "tiny", seed=5)
    s3 = make_s3_client(s3_endpoint)
    for bucket in (EXPORT_BUCKET, LOGS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    webserver_port, code_server_port = free_port(), free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(base / "dagster_home"),
        "DAGSTER_PG_HOST": storage_url.host, "DAGSTER_PG_PORT": str(storage_url.port),
        "DAGSTER_PG_DB": storage_url.database, "DAGSTER_PG_USERNAME": storage_url.username,
        "DAGSTER_PG_PASSWORD": storage_url.password or "",
        "DAGSTER_COMPUTE_LOGS_BUCKET": LOGS_BUCKET,
        "DAGSTER_COMPUTE_LOGS_DIR": str(base / "dagster_home" / "compute-logs"),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(code_server_port),
        "DAGSTER_WEBSERVER_HOST": "127.0.0.1", "DAGSTER_WEBSERVER_PORT": str(webserver_port),
        "ECLIPSE_DATABASE_URL": source_url,
        # A database of its own in the session's Redis, so no other test's flush can reach it.
        "ECLIPSE_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/7",
        "ECLIPSE_S3_BUCKET": EXPORT_BUCKET,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "ECLIPSE_SENSOR_LONG_POLL_MS": "4000",
        # The throwaway cluster speaks no TLS; dagster-service.sh would otherwise require it.
        "PGSSLMODE": "disable",
    }
    processes: dict[str, subprocess.Popen] = {}
    logs = []

    def start(role: str) -> subprocess.Popen:
        log = open(base / f"{role}.log", "wb")
        logs.append(log)
        processes[role] = subprocess.Popen(["bash", str(SERVICE), role], cwd=base, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        return processes[role]

    try:
        wait_for_port("127.0.0.1", code_server_port, timeout=120, proc=start("code-server"))
        start("daemon")
        start("run-workers")
        _wait_for_webserver(webserver_port, start("webserver"))
        for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME",
                     "DAGSTER_PG_PASSWORD", "DAGSTER_COMPUTE_LOGS_BUCKET", "DAGSTER_COMPUTE_LOGS_DIR"):
            os.environ[name] = env[name]
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        _wait_until_ready(instance, env["ECLIPSE_REDIS_URL"], processes)
        yield {"instance": instance, "env": env, "webserver_port": webserver_port, "source_url": source_url,
               "s3": s3, "redis": redis.Redis.from_url(env["ECLIPSE_REDIS_URL"]), "processes": processes,
               "base": base}
        instance.dispose()
    finally:
        for process in processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes.values():
            try:
                # Nothing of the deployment outlives the test; no need to wait for a graceful stop under load.
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()


def _wait_for_jobs(client: redis.Redis, job_ids: list[str], timeout: float = 180) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for job_id in job_ids:
            fields = {k.decode(): v.decode() for k, v in client.hgetall(f"eclipse:exports:job:{job_id}").items()}
            if fields.get("status") in DONE:
                found[job_id] = fields
        if len(found) == len(job_ids):
            return found
        time.sleep(0.3)
    raise AssertionError(f"jobs not done after {timeout}s: {sorted(set(job_ids) - found.keys())}")


def _wait_for_run(instance: DagsterInstance, run_id: str, timeout: float = 120) -> DagsterRunStatus:
    """The run's final status (the job's status hash says ``completed`` a moment before the run ends)."""
    deadline = time.monotonic() + timeout
    while (run := instance.get_run_by_id(run_id)) is not None and not run.is_finished and \
            time.monotonic() < deadline:
        time.sleep(0.3)
    return run.status if run is not None else None


LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def test_requests_backfill_sensors_and_schedules_on_the_production_shape(production):
    instance: DagsterInstance = production["instance"]
    client: redis.Redis = production["redis"]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"

    # A backfill of two workspaces' infringements, launched as the UI's "Materialize" dialog does.
    backfill = _graphql(production["webserver_port"], LAUNCH_BACKFILL, {"params": {
        "assetSelection": [{"path": ["infringements_export"]}], "partitionNames": ["ws_acme", "ws_globex"],
        "title": "production-shape backfill"}})["launchPartitionBackfill"]
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill

    # Raw requests, as the web app XADDs them.
    requests = {
        "prod-alerts": {"workspaceId": "ws_globex", "userId": "usr_globex_admin", "resourceType": "alerts",
                        "format": "parquet", "filters": {"severity": ["high", "critical"]}},
        "prod-actions": {"workspaceId": "ws_acme", "userId": "usr_acme_analyst", "resourceType": "actions",
                         "format": "jsonl"},
        "prod-forbidden": {"workspaceId": "ws_acme", "userId": "usr_acme_viewer",
                           "resourceType": "infringements", "format": "csv"},
    }
    for job_id, body in requests.items():
        client.xadd("eclipse:exports:requests", {"payload": json.dumps({"id": job_id, **body})})
    jobs = _wait_for_jobs(client, list(requests))
    assert (jobs["prod-forbidden"]["status"], jobs["prod-forbidden"]["errorCode"]) == ("rejected", "forbidden")
    engine = create_engine(production["source_url"])
    with engine.connect() as conn:
        alert_ids = list(conn.execute(text(
            "SELECT id FROM alerts WHERE workspace_id = 'ws_globex' AND severity IN ('high', 'critical') "
            "ORDER BY detected_at, id")).scalars())
        action_ids = list(conn.execute(text(
            "SELECT id FROM actions WHERE workspace_id = 'ws_acme' ORDER BY created_at, id")).scalars())
        infringement_counts = dict(conn.execute(text(
            "SELECT workspace_id, count(*) FROM infringements GROUP BY workspace_id")).all())
    for job_id, fmt, expected in (("prod-alerts", "parquet", alert_ids), ("prod-actions", "jsonl", action_ids)):
        fields = jobs[job_id]
        assert fields["status"] == "completed", fields
        rows = read_rows(urllib.request.urlopen(fields["downloadUrl"]).read(), fmt)
        assert [r["id"] for r in rows] == expected and len(expected) > 0
        runs = instance.get_runs(RunsFilter(tags={"eclipse/job_id": job_id}))
        assert [r.run_id for r in runs] == [fields["runId"]]
        assert _wait_for_run(instance, fields["runId"]) == DagsterRunStatus.SUCCESS

    # The backfill: one run per workspace, each file complete.
    deadline = time.monotonic() + 180
    while (status := instance.get_backfill(backfill["backfillId"]).status) in (
            BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING) and time.monotonic() < deadline:
        time.sleep(1)
    assert status == BulkActionStatus.COMPLETED_SUCCESS, status
    backfill_runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill["backfillId"]}))
    assert sorted(r.tags["dagster/partition"] for r in backfill_runs) == ["ws_acme", "ws_globex"]
    for run in backfill_runs:
        assert run.status == DagsterRunStatus.SUCCESS
        fields = _wait_for_jobs(client, [f"dagster-{run.run_id}"])[f"dagster-{run.run_id}"]
        assert fields["status"] == "completed", fields
        assert int(fields["rowCount"]) == infringement_counts[run.tags["dagster/partition"]]
        assert production["s3"].head_object(Bucket=EXPORT_BUCKET, Key=fields["filePath"])["ContentLength"] == \
            int(fields["byteSize"])

    # Compute logs of every run landed in S3 (the run log's stderr at least).
    log_keys = [o["Key"] for page in production["s3"].get_paginator("list_objects_v2").paginate(
        Bucket=LOGS_BUCKET, Prefix="dagster/compute-logs/") for o in page.get("Contents", [])]
    for run in [*backfill_runs, *instance.get_runs(RunsFilter(tags={"eclipse/job_id": ["prod-alerts"]}))]:
        assert any(f"/{run.run_id}/" in key for key in log_keys), (run.run_id, log_keys[:5])

    # Every sensor of the code location has ticked, each tick stored in PostgreSQL.
    from eclipse_exports.definitions import defs

    repository = defs.get_repository_def()
    sensor_states = {s.instigator_name: s for s in instance.all_instigator_state(
        instigator_type=InstigatorType.SENSOR)}
    for sensor in repository.sensor_defs:
        state = sensor_states.get(sensor.name)
        assert state is not None, f"sensor {sensor.name} never ticked"
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
        assert ticks and {t.status for t in ticks} & {TickStatus.SUCCESS, TickStatus.SKIPPED}, (sensor.name, ticks)

    # Every schedule evaluates through the code server (the UI's "Test schedule"), and the scheduler runs.
    for schedule in repository.schedule_defs:
        result = _graphql(production["webserver_port"], """
            mutation ($selector: ScheduleSelector!, $timestamp: Float) {
              scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
                __typename ... on DryRunInstigationTick { evaluationResult { error { message } } } } }""",
                          {"selector": {"repositoryName": "__repository__", "repositoryLocationName": "eclipse_exports",
                                        "scheduleName": schedule.name}, "timestamp": time.time()})["scheduleDryRun"]
        assert result["__typename"] == "DryRunInstigationTick" and not result["evaluationResult"]["error"], result
    statuses = instance.get_daemon_statuses()
    unhealthy = {name: status.last_heartbeat_errors for name, status in statuses.items() if not status.healthy}
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "BACKFILL"} <= statuses.keys() and not unhealthy, unhealthy


LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
MEMBERS = [("ws_acme", "usr_acme_analyst"), ("ws_globex", "usr_globex_admin"), ("ws_initech", "usr_initech_owner")]


def _latest_materialization_runs(instance: DagsterInstance) -> set[str]:
    """Each asset partition's latest materialization's run, asked partition by partition."""
    from dagster import AssetRecordsFilter

    runs = set()
    for key in instance.get_asset_keys():
        for partition in instance.get_materialized_partitions(key):
            [record] = instance.fetch_materializations(AssetRecordsFilter(key, asset_partitions=[partition]),
                                                       limit=1).records
            runs.add(record.run_id)
    return runs


@pytest.mark.timeout(2400)
def test_a_burst_leaves_nothing_in_tmp_and_the_history_job_prunes_what_is_old(production):
    """A burst of exports (ECLIPSE_TMP_BURST, default 100) stages nothing under /tmp and leaves no staged log
    file; then dagster_history_cleanup_job, launched through the webserver as of now + 31 days, removes every
    finished run but each partition's latest materialization, their compute logs in S3 and the staged
    folders, while every live export stays; the Runs page still loads."""
    instance: DagsterInstance = production["instance"]
    client: redis.Redis = production["redis"]
    s3, home = production["s3"], Path(production["env"]["DAGSTER_HOME"])
    count = int(os.environ.get("ECLIPSE_TMP_BURST", "100"))
    # The servers' own working folders (made at start, removed at stop) are there before the burst.
    temporary = home / "tmp"
    servers_own = set(os.listdir(temporary))
    jobs = {f"burst-{n}": MEMBERS[n % len(MEMBERS)] for n in range(count)}
    for job_id, (workspace, user) in jobs.items():
        client.xadd("eclipse:exports:requests", {"payload": json.dumps({
            "id": job_id, "workspaceId": workspace, "userId": user, "resourceType": "alerts", "format": "csv"})})
    done = _wait_for_jobs(client, list(jobs), timeout=180 + 8 * count)
    assert {fields["status"] for fields in done.values()} == {"completed"}, \
        {j: f.get("error") for j, f in done.items() if f["status"] != "completed"}
    for fields in done.values():
        assert _wait_for_run(instance, fields["runId"]) == DagsterRunStatus.SUCCESS

    all_runs = {run.run_id for run in instance.get_runs()}
    assert not [run_id for run_id in all_runs if os.path.exists(f"/tmp/{run_id}")], "compute logs staged in /tmp"
    staging = home / "compute-logs"
    for folder in (staging, temporary):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700), folder
    assert [p for p in staging.rglob("*") if p.is_file()] == [], "staged log files left after their upload"
    assert sorted(set(os.listdir(temporary)) - servers_own) == [], "temporary files left behind by the runs"

    protected = _latest_materialization_runs(instance)
    as_of = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    launched = _graphql(production["webserver_port"], LAUNCH_RUN, {"params": {
        "selector": {"repositoryLocationName": "eclipse_exports", "repositoryName": "__repository__",
                     "jobName": "dagster_history_cleanup_job"},
        "runConfigData": {"ops": {"dagster_history_cleanup": {"config": {"as_of": as_of}}}}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    history_run = launched["run"]["runId"]
    assert _wait_for_run(instance, history_run, timeout=600) == DagsterRunStatus.SUCCESS

    remaining = {run.run_id for run in instance.get_runs()}
    assert remaining - {history_run} == protected & all_runs, (len(remaining), len(protected))
    assert len(all_runs - remaining) >= count - len(MEMBERS)
    logs = {o["Key"].split("/")[3] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=LOGS_BUCKET, Prefix="dagster/compute-logs/storage/") for o in page.get("Contents", [])}
    assert not logs & (all_runs - remaining), "compute logs of deleted runs left in S3"
    assert not {p.name for p in staging.iterdir()} & (all_runs - remaining)
    for job_id, fields in done.items():
        assert client.hget(f"eclipse:exports:job:{job_id}", "status") == b"completed"
        assert s3.head_object(Bucket=EXPORT_BUCKET, Key=fields["filePath"])["ContentLength"] == \
            int(fields["byteSize"])
    assert {"ws_acme", "ws_globex", "ws_initech"} <= instance.get_materialized_partitions(
        AssetKey("alerts_export"))

    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(120_000)
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda button: button.click())
            page.goto(f"http://127.0.0.1:{production['webserver_port']}/runs")
            expect(page.locator(f'a[href="/runs/{history_run}"]').first).to_be_visible(timeout=120_000)
        finally:
            browser.close()
