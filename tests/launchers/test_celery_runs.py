"""Runs on Celery run workers, for real: `dagster dev` with ``CeleryRunWorkerLauncher`` and separately started
``eclipse-exports run-workers`` groups, requests XADDed raw, children and whole groups SIGKILLed by PID.

The deployment, source (PostgreSQL with one big workspace), restartable Redis and S3 fault proxy are the
reliability tests' own (``tests/e2e/test_reliability.py``); a slowed S3 keeps a big export running long enough
to kill or terminate it mid-run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from eclipse_exports.launchers.celery import CeleryRunWorkerLauncher
from eclipse_exports.launchers.run_task import EXECUTE_RUN_TASK
from eclipse_exports.local.services import free_port
from eclipse_exports.queue.run_workers import RunWorkerRegistry
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from tests.e2e.test_reliability import assert_exactly_once, big_export, export_objects, services  # noqa: F401
from tests.live_dagster import (
    DagsterDev,
    runs_by_job,
    send_requests,
    small_requests,
    statuses,
    successful,
    wait_for_terminal,
    wait_until,
)
from tests.run_workers import RunWorkerGroup

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]
ROOT = Path(__file__).resolve().parents[2]
WATCHED_YAML_LINES = ("run_launcher:\n  module: eclipse_exports.launchers.watched\n  class: WatchedRunLauncher\n")


@pytest.fixture
def deployment(services, tmp_path, request):  # noqa: F811 - this module's own, with the environment exposed
    """A fresh bucket and a flushed Redis; ``started`` deployments and ``cleanup`` callables end with the test."""
    bucket = f"celery-{os.urandom(4).hex()}"
    make_s3_client(services["s3_endpoint"]).create_bucket(Bucket=bucket)
    client = redis.Redis.from_url(services["redis_url"])
    client.flushdb()
    env = {**os.environ, "ECLIPSE_DATABASE_URL": services["database_url"], "ECLIPSE_REDIS_URL": services["redis_url"],
           "ECLIPSE_S3_BUCKET": bucket, "AWS_ENDPOINT_URL": services["proxy"].url,
           "ECLIPSE_SENSOR_LONG_POLL_MS": "1000", "ECLIPSE_CLEANUP_CRON": "0 0 1 1 *"}
    state = {**services, "base": tmp_path, "env": env, "redis": client, "started": [], "cleanup": [],
             "storage": ExportStorage(make_s3_client(services["s3_endpoint"]), bucket)}
    yield state
    for stop in state["cleanup"]:
        stop()
    for dev in state["started"]:
        dev.stop()
    services["proxy"].clear()


def small_export(job_id: str, workspace: str = "ws_globex", user: str = "usr_globex_admin") -> dict:
    return {"id": job_id, "workspaceId": workspace, "userId": user, "resourceType": "alerts", "format": "csv"}


def start_dev(deployment, name: str, **kwargs) -> DagsterDev:
    """A deployment like the fixture's ``start``, with the worker groups asked for."""
    dev = DagsterDev(deployment["base"] / f"{name}-{os.urandom(2).hex()}", deployment["env"], free_port(), **kwargs)
    deployment["started"].append(dev)
    return dev.start()


@pytest.fixture
def celery(deployment, monkeypatch):
    """The deployment's environment in this process too, so the test's own instance handle talks to the same
    broker and queue; returns a function that opens a deployment's instance."""
    monkeypatch.setenv("ECLIPSE_REDIS_URL", deployment["redis_url"])

    def instance_of(dev: DagsterDev) -> DagsterInstance:
        monkeypatch.setenv("ECLIPSE_RUN_QUEUE", dev.env["ECLIPSE_RUN_QUEUE"])
        return dev.instance()

    return instance_of


def run_of(dev: DagsterDev, job_id: str, status: set[DagsterRunStatus] | None = None):
    runs = runs_by_job([dev.instance()], [job_id])[job_id]
    return next((r for r in runs if status is None or r.status in status), None)


def running_child(deployment, dev: DagsterDev, job_id: str, timeout: float = 180):
    """Wait until ``job_id``'s run is writing rows on a worker child; returns (run id, the child's heartbeat)."""
    registry = RunWorkerRegistry(deployment["redis"])
    wait_until(lambda: int(statuses(deployment["redis"], [job_id])[job_id].get("rowsWritten", 0)) > 0, timeout,
               f"{job_id} to stream rows", every=0.2)
    run = run_of(dev, job_id, {DagsterRunStatus.STARTED})
    assert run is not None
    beat = wait_until(lambda: registry.run_beat(run.run_id), 30, "the run's heartbeat")
    return run.run_id, beat


def event_types(instance: DagsterInstance, run_id: str) -> list[str]:
    """The run's events without engine events and logs (those name processes and launchers)."""
    skip = {DagsterEventType.ENGINE_EVENT, DagsterEventType.LOGS_CAPTURED, DagsterEventType.RUN_ENQUEUED,
            DagsterEventType.STEP_WORKER_STARTING, DagsterEventType.STEP_WORKER_STARTED}
    records = instance.get_records_for_run(run_id, limit=1000).records
    return [r.event_log_entry.dagster_event.event_type_value for r in records
            if r.event_log_entry.dagster_event is not None and r.event_log_entry.dagster_event.event_type not in skip]


def test_a_request_on_run_workers_has_the_events_of_a_spawned_run(deployment, celery, tmp_path):
    client = deployment["redis"]
    warm = start_dev(deployment, "warm")
    send_requests(client, [small_export("parity-warm")])
    final = wait_for_terminal(client, ["parity-warm"], timeout=300)["parity-warm"]
    assert final["status"] == "completed", final
    instance = celery(warm)
    # The job is completed a moment before its run ends (the run's last events follow the step).
    run = wait_until(lambda: (r := instance.get_run_by_id(final["runId"])).is_finished and r, 60, "the run's end")
    assert run.status == DagsterRunStatus.SUCCESS and run.tags["eclipse/job_id"] == "parity-warm"
    assert run.tags.get("dagster/run_key") == "parity-warm" or run.tags.get("dagster/sensor_name")
    warm_events = event_types(instance, run.run_id)
    messages = [r.event_log_entry.message for r in instance.get_records_for_run(run.run_id, limit=1000).records]
    assert any("handed to the Celery run workers" in (m or "") for m in messages)
    warm.stop()

    yaml_path = tmp_path / "spawned.yaml"
    original = (warm.home / "dagster.yaml").read_text()
    start = original.index("run_launcher:")
    end = original.index("\n\n", start)
    yaml_path.write_text(original[:start] + WATCHED_YAML_LINES + original[end + 1:])
    spawned = start_dev(deployment, "spawned", instance_yaml=yaml_path, worker_groups=0)
    send_requests(client, [small_export("parity-spawned")])
    other = wait_for_terminal(client, ["parity-spawned"], timeout=300)["parity-spawned"]
    assert other["status"] == "completed", other
    spawned_instance = spawned.instance()
    wait_until(lambda: spawned_instance.get_run_by_id(other["runId"]).is_finished, 60, "the spawned run's end")
    spawned_events = event_types(spawned_instance, other["runId"])
    assert warm_events == spawned_events
    assert "ASSET_MATERIALIZATION" in warm_events and "ASSET_CHECK_EVALUATION" in warm_events


def test_a_second_delivery_of_a_run_is_refused(deployment, celery):
    client = deployment["redis"]
    dev = start_dev(deployment, "dup")
    send_requests(client, [small_export("dup-1")])
    final = wait_for_terminal(client, ["dup-1"], timeout=300)["dup-1"]
    assert final["status"] == "completed", final
    instance = celery(dev)
    launcher = instance.run_launcher
    assert isinstance(launcher, CeleryRunWorkerLauncher)
    # The job completes a moment before its run's last events are written: wait for the child's exit event.
    wait_until(lambda: any("Process for run exited" in (r.event_log_entry.message or "")
                           for r in instance.get_records_for_run(final["runId"], limit=1000).records), 60,
               "the run's last event")
    events_before = len(instance.get_records_for_run(final["runId"], limit=1000).records)
    # The broker restoring the message twice, at once: both deliveries reach live children.
    results = [launcher.celery.send_task(EXECUTE_RUN_TASK, kwargs={"run_id": final["runId"], "attempt": 0},
                                         queue=launcher.default_queue, routing_key=launcher.default_queue)
               for _ in range(2)]
    answers = [r.get(timeout=60) for r in results]
    assert all(a.startswith("refused: ") for a in answers), answers
    run = instance.get_run_by_id(final["runId"])
    assert run.status == DagsterRunStatus.SUCCESS
    records = instance.get_records_for_run(final["runId"], limit=1000).records
    added = [r.event_log_entry.message for r in records[events_before:]]
    assert len(added) == 2 and all("refused the task" in m for m in added), added
    assert len(successful(runs_by_job([instance], ["dup-1"])["dup-1"])) == 1
    assert export_objects(deployment["storage"]) == [final["filePath"]]


def test_a_child_killed_mid_run_fails_the_run_and_its_retry_completes_the_job(deployment, celery):
    client, proxy = deployment["redis"], deployment["proxy"]
    dev = start_dev(deployment, "childkill")
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=1.5)
    send_requests(client, [big_export("childkill")])
    run_id, beat = running_child(deployment, dev, "childkill")
    assert beat.pid in {p.pid for p in dev.workers[0].children()}
    killed_at = time.monotonic()
    os.kill(beat.pid, signal.SIGKILL)
    proxy.remove(slow)
    instance = celery(dev)
    wait_until(lambda: instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE, 90, "the run to fail")
    failed_after = time.monotonic() - killed_at
    final = wait_for_terminal(client, ["childkill"], timeout=400)
    figures = assert_exactly_once(deployment, [instance], ["childkill"], final)
    assert figures["retried"] == 1 and figures["failed runs"] == 1, figures
    messages = [r.event_log_entry.message or "" for r in instance.get_records_for_run(run_id, limit=1000).records]
    assert any("terminated by signal 9 (SIGKILL)" in m for m in messages), messages[-5:]
    print(f"\nchild SIGKILL: run failed {failed_after:.0f} s later, retried once, job completed; {figures}")


def test_a_killed_worker_group_is_taken_over_by_a_second_group(deployment, celery):
    client, proxy = deployment["redis"], deployment["proxy"]
    dev = start_dev(deployment, "groupkill")
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=4)
    send_requests(client, [big_export("groupkill")])
    run_id, _ = running_child(deployment, dev, "groupkill")
    killed_at = time.monotonic()
    assert dev.workers[0].kill() >= 3  # the parent and its children, at once
    second = RunWorkerGroup(dev.env, dev.home / "workers-second.log", concurrency=2, name="runs-second@test")
    deployment["cleanup"].append(second.stop)
    second.start()
    proxy.remove(slow)
    instance = celery(dev)
    wait_until(lambda: instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE, 120, "the run to fail")
    failed_after = time.monotonic() - killed_at
    assert failed_after < 75, failed_after
    failure = instance.get_records_for_run(run_id, of_type=DagsterEventType.PIPELINE_FAILURE).records
    assert "stopped reporting" in (failure[0].event_log_entry.message or ""), failure[0].event_log_entry.message
    final = wait_for_terminal(client, ["groupkill"], timeout=400)
    figures = assert_exactly_once(deployment, [instance], ["groupkill"], final)
    retry = instance.get_run_by_id(final["groupkill"]["runId"])
    assert retry.tags["dagster/parent_run_id"] == run_id and figures["retried"] == 1, figures
    messages = [r.event_log_entry.message or "" for r in instance.get_records_for_run(retry.run_id, limit=1000).records]
    assert not any("refused" in m for m in messages)
    print(f"\nworker group SIGKILL: run failed {failed_after:.0f} s later; the second group completed the retry")


def test_terminate_cancels_the_run_and_fails_the_job_without_leftovers(deployment, celery):
    client, proxy, storage = deployment["redis"], deployment["proxy"], deployment["storage"]
    dev = start_dev(deployment, "terminate")
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=1.5)
    send_requests(client, [big_export("terminate")])
    run_id, _ = running_child(deployment, dev, "terminate")
    instance = celery(dev)
    instance.run_coordinator.cancel_run(run_id)  # what the UI's Terminate calls
    wait_until(lambda: instance.get_run_by_id(run_id).status == DagsterRunStatus.CANCELED, 60, "the run canceled")
    proxy.remove(slow)
    final = wait_for_terminal(client, ["terminate"], timeout=120)["terminate"]
    assert final["status"] == "failed" and "stopped by an operator" in final["error"], final
    wait_until(lambda: storage.pending_multipart_uploads() == [], 60, "no incomplete upload")
    assert export_objects(storage) == []
    assert RunWorkerRegistry(client).run_beat(run_id) is None


def test_ctrl_c_in_the_worker_groups_terminal_lets_the_run_in_flight_finish(deployment, celery):
    """A terminal's Ctrl-C reaches the whole process group, children included: the parent shuts down warm and
    the export in flight completes (it used to be interrupted as an operator's terminate, and the job failed)."""
    client, proxy, storage = deployment["redis"], deployment["proxy"], deployment["storage"]
    dev = start_dev(deployment, "ctrlc")
    group = dev.workers[0]
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=1.0)
    send_requests(client, [big_export("ctrlc")])
    run_id, _ = running_child(deployment, dev, "ctrlc")
    os.killpg(group.proc.pid, signal.SIGINT)
    time.sleep(3)  # the interrupt, were it delivered, lands in the run within a moment
    proxy.remove(slow)
    final = wait_for_terminal(client, ["ctrlc"], timeout=240)["ctrlc"]
    assert final["status"] == "completed", final
    assert final["runId"] == run_id
    wait_until(lambda: celery(dev).get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS, 60, "the run's success")
    assert group.proc.wait(timeout=60) == 0  # the group went down warm, after its run
    assert export_objects(storage) == [final["filePath"]] and int(final["rowCount"]) > 0


def test_with_no_worker_alive_a_run_fails_fast_with_the_cause(deployment, celery):
    client = deployment["redis"]
    dev = start_dev(deployment, "noworker", worker_groups=0)
    started = time.monotonic()
    send_requests(client, [small_export("noworker")])
    instance = celery(dev)
    first = wait_until(lambda: run_of(dev, "noworker", {DagsterRunStatus.FAILURE}), 60, "the run to fail")
    took = time.monotonic() - started
    message = instance.get_records_for_run(first.run_id, of_type=DagsterEventType.PIPELINE_FAILURE).records
    text = " ".join(r.event_log_entry.message or "" for r in message)
    engine = " ".join(r.event_log_entry.message or "" for r in instance.get_records_for_run(first.run_id).records)
    assert f"no run worker is consuming queue {dev.env['ECLIPSE_RUN_QUEUE']}" in text + engine
    assert took < 60, took
    final = wait_for_terminal(client, ["noworker"], timeout=180)["noworker"]
    assert final["status"] == "failed" and "no run worker is consuming queue" in final["error"], final
    print(f"\nno worker: first run failed {took:.0f} s after the XADD; job failed: {final['error'][:120]}")


def test_a_code_change_restarts_the_group_after_the_run_in_flight_and_new_runs_get_the_new_code(deployment, celery):
    client, proxy = deployment["redis"], deployment["proxy"]
    dev = start_dev(deployment, "reload")
    log = dev.workers[0].log
    slow = proxy.inject(method="PUT", query=r"partNumber=", delay=2)
    send_requests(client, [big_export("in-flight")])
    running_child(deployment, dev, "in-flight")
    marker = ROOT / "eclipse_exports" / "launchers" / "__init__.py"
    os.utime(marker)  # a change on disk, as an edit or a deploy of new code makes
    wait_until(lambda: "code location changed on disk" in log.read_text(), 30, "the group to see the change")
    proxy.remove(slow)
    final = wait_for_terminal(client, ["in-flight"], timeout=300)
    instance = celery(dev)
    figures = assert_exactly_once(deployment, [instance], ["in-flight"], final)
    assert figures["runs"] == 1, figures  # the run in flight finished on the old code, not retried
    wait_until(lambda: log.read_text().count("run workers: runs-") >= 2, 120, "the group to start again")
    dev.workers[0].wait_alive()
    send_requests(client, [small_export("after-reload")])
    after = wait_for_terminal(client, ["after-reload"], timeout=300)["after-reload"]
    assert after["status"] == "completed", after
    started = [r.event_log_entry.message for r in instance.get_records_for_run(after["runId"]).records
               if (r.event_log_entry.message or "").startswith("Started process for run")]
    assert started, "the new run executed on a worker child"


def test_a_second_group_takes_part_of_a_burst(deployment, celery):
    client = deployment["redis"]
    dev = start_dev(deployment, "scaleout", worker_groups=2, concurrency=2)
    burst = small_requests(24, "scale")
    send_requests(client, burst.values())
    final = wait_for_terminal(client, burst, timeout=600)
    instance = celery(dev)
    figures = assert_exactly_once(deployment, [instance], burst, final)
    nodes = Counter()
    for job_id in burst:
        worker = [r.event_log_entry.message for r in instance.get_records_for_run(final[job_id]["runId"]).records
                  if "Started process for run" in (r.event_log_entry.message or "")]
        pid = int(worker[0].split("pid: ")[1].rstrip(").")) if worker else None
        nodes[next((g.name for g in dev.workers if pid in {c.pid for c in g.children()}), "gone")] += 1
    shares = {name: count for name, count in nodes.items() if count}
    assert all(shares.get(g.name, 0) >= 4 for g in dev.workers), shares
    print(f"\nscale-out: 24 requests over two groups: {shares}; {figures}")


def test_the_parent_of_a_worker_group_stays_flat_over_many_runs():
    runs = int(os.environ.get("ECLIPSE_RSS_RUNS", "200"))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "worker_rss.py"), "--runs", str(runs), "--json"],
                          capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0, summary
    assert summary["parent_growth_mib"] < 5, summary
    print(f"\nworker RSS: {runs} runs, parent grew {summary['parent_growth_mib']} MiB")
