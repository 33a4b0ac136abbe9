"""export_cleanup_job, export_cleanup_schedule and the `cleanup`/`usage` commands on a real S3 and Redis.

Faults come from tests/s3_fault_proxy.py in front of moto's server.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
)
from dagster._core.test_utils import freeze_time

from eclipse_exports.cli import main
from eclipse_exports.jobs import export_cleanup_job
from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource
from eclipse_exports.schedules import export_cleanup_schedule
from eclipse_exports.schedules.cleanup import cleanup_cron
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from tests.retention.test_retention import all_keys, completed, cross_a_second, put_all, status
from tests.s3_fault_proxy import S3FaultProxy

STAMP = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
DELETE_WS_B = {"method": "POST", "query": r"(^|&)delete(=|&|$)", "body": b"<Key>workspaces/ws_b/", "status": 500}


@pytest.fixture
def proxy(s3_endpoint):
    with S3FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def old_files(proxy, bucket, redis_client):
    """Four old exports in each of ws_a, ws_b, ws_c, written through the proxy; returns (storage, keys, as_of)."""
    storage = ExportStorage(make_s3_client(proxy.url), bucket)
    keys = {storage.export_key(ws, "alerts", f"{ws}-{n}", "csv", STAMP): b"a,b\n" for ws in ("ws_a", "ws_b", "ws_c")
            for n in range(4)}
    put_all(storage, keys)
    completed(redis_client, storage, keys)
    return storage, keys, cross_a_second() + timedelta(hours=72)


def step_event(result, event_type: str):
    return next(e for e in result.all_events if e.event_type_value == event_type)


def test_the_run_reports_a_failed_batch_in_its_metadata_and_the_next_run_completes(
        proxy, old_files, bucket, redis_url, redis_client):
    storage, keys, as_of = old_files
    resources = {"redis": RedisResource(url=redis_url),
                 "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=proxy.url),
                 "limits": ExportLimitsResource()}
    config = {"ops": {"export_cleanup": {"config": {"as_of": as_of.isoformat()}}}}
    proxy.inject(**DELETE_WS_B)
    with DagsterInstance.ephemeral() as instance:
        failed = export_cleanup_job.execute_in_process(run_config=config, resources=resources, instance=instance,
                                                       raise_on_error=False)
        assert not failed.success
        failure = step_event(failed, "STEP_FAILURE").step_failure_data
        assert "12 keys not deleted" in failure.user_failure_data.description
        metadata = failure.user_failure_data.metadata
        assert metadata["failed_keys"].value == 12
        assert "InternalError" in metadata["failures"].value and "ws_b-0" in metadata["failures"].value
        assert all_keys(storage) == set(keys)

        proxy.clear()
        done = export_cleanup_job.execute_in_process(run_config=config, resources=resources, instance=instance)
        assert done.success and all_keys(storage) == set()
        metadata = step_event(done, "STEP_OUTPUT").step_output_data.metadata
    table = metadata["summary"].value
    assert [r.data["workspace"] for r in table.records] == ["ws_a", "ws_b", "ws_c"]
    assert {r.data["files"] for r in table.records} == {4}
    assert {c.name for c in table.schema.columns} == {"workspace", "files", "reports", "bytes_removed",
                                                      "uploads_aborted", "errors"}
    assert metadata["files_removed"].value == 12 and metadata["bytes_removed"].value == 48
    assert status(redis_client, "ws_b-2")["status"] == "expired"


def test_the_schedule_judges_ages_as_of_its_tick_and_skips_while_a_cleanup_runs(monkeypatch):
    tick = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    # Evaluated at its own time, as the daemon does (a tick evaluated days late is a catch-up the guard skips).
    with instance_for_test() as instance, freeze_time(tick + timedelta(seconds=5)):
        request = export_cleanup_schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert isinstance(request, RunRequest)
        assert request.run_config["ops"]["export_cleanup"]["config"]["as_of"] == tick.isoformat()
        instance.add_run(DagsterRun(job_name="export_cleanup_job", run_id=str(uuid.uuid4()),
                                    status=DagsterRunStatus.STARTED))
        skipped = export_cleanup_schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert isinstance(skipped, SkipReason) and "has not finished" in skipped.skip_message
    assert export_cleanup_schedule.cron_schedule == "0 * * * *" == cleanup_cron()
    monkeypatch.setenv("ECLIPSE_CLEANUP_CRON", "*/10 * * * *")
    assert cleanup_cron() == "*/10 * * * *"


@pytest.fixture
def cli_env(monkeypatch, proxy, bucket, redis_url, tmp_path):
    monkeypatch.setenv("ECLIPSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ECLIPSE_REDIS_URL", redis_url)
    monkeypatch.setenv("ECLIPSE_S3_BUCKET", bucket)
    monkeypatch.setenv("ECLIPSE_S3_PREFIX", "")
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)


def test_the_cleanup_command_dry_runs_cleans_and_fails_loudly(cli_env, proxy, old_files, redis_client):
    storage, keys, as_of = old_files
    runner = CliRunner()
    dry = runner.invoke(main, ["cleanup", "--as-of", as_of.isoformat(), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing deleted" in dry.output and "would remove 12 files (48 bytes)" in dry.output
    assert re.search(r"ws_b\s+4\s+0\s+16\s+0\s+0", dry.output)
    assert all_keys(storage) == set(keys)

    proxy.inject(**DELETE_WS_B)
    failing = runner.invoke(main, ["cleanup", "--as-of", as_of.isoformat().replace("+00:00", "Z")])
    assert failing.exit_code == 1 and "FAILED 12 keys" in failing.output
    proxy.clear()
    now = runner.invoke(main, ["cleanup"])
    assert now.exit_code == 0 and "removed 0 files" in now.output  # judged as of now, nothing is due yet
    done = runner.invoke(main, ["cleanup", "--as-of", as_of.isoformat()])
    assert done.exit_code == 0 and "removed 12 files (48 bytes)" in done.output and all_keys(storage) == set()

    bad = runner.invoke(main, ["cleanup", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "not ISO-8601" in bad.output


def test_the_usage_command_shows_usage_against_the_quota(cli_env, monkeypatch, redis_client):
    monkeypatch.setenv("ECLIPSE_WORKSPACE_QUOTA_OVERRIDES", "ws_big=4000")
    redis_client.set(workspace_usage_key("ws_big"), 1000)
    shown = CliRunner().invoke(main, ["usage", "--workspace", "ws_big"])
    assert shown.exit_code == 0 and shown.output.strip() == "ws_big: 1,000 of 4,000 bytes (25.0 %)"
    redis_client.set(workspace_usage_key("ws_big"), 4000)
    assert "OVER QUOTA" in CliRunner().invoke(main, ["usage", "--workspace", "ws_big"]).output
    # A bad argument is a CLI error (exit 2, see cli.ERROR_EXIT); 1 means the clean-up itself left failures.
    bad = CliRunner().invoke(main, ["usage", "--workspace", "../etc"])
    assert bad.exit_code == 2 and "CONTRACT id pattern" in bad.output
