"""dagster_history_cleanup_job on a PostgreSQL-backed instance with compute logs in S3 (moto).

Real runs of a small partitioned asset write real materializations and compute logs; the pass as of
now + 31 days must delete the finished runs with their event logs, S3 compute logs and staged folders,
and keep unfinished runs, newer runs and every partition's latest materialization.
"""

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    StaticPartitionsDefinition,
    asset,
    build_schedule_context,
    instance_for_test,
    materialize,
)
from dagster._core.storage.compute_log_manager import ComputeIOType
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import make_url

from eclipse_exports.jobs import dagster_history_cleanup_job
from eclipse_exports.resources.run_history import InstanceRunHistory
from eclipse_exports.retention.history import prune_run_history
from eclipse_exports.schedules import dagster_history_cleanup_schedule
from eclipse_exports.storage.client import make_s3_client
from tests.conftest import _fresh_database

LOGS_PREFIX = "dagster/compute-logs"


@asset(partitions_def=StaticPartitionsDefinition(["ws_a", "ws_b"]))
def thing(context) -> None:
    print(f"materializing {context.partition_key}")  # noqa: T201 - stdout is what the compute log captures


@asset
def broken() -> None:
    raise RuntimeError("fails on purpose")


@pytest.fixture
def instance(postgres_url, s3_endpoint, tmp_path):
    url = make_url(_fresh_database(postgres_url, f"dagster_history_{os.getpid()}"))
    logs_bucket = f"logs-{tmp_path.name[-20:].lower().replace('_', '-')}"
    make_s3_client(s3_endpoint).create_bucket(Bucket=logs_bucket)
    staging = tmp_path / "compute-logs"
    staging.mkdir(mode=0o700)
    overrides = {
        "storage": {"postgres": {"postgres_db": {"hostname": url.host, "port": url.port, "db_name": url.database,
                                                 "username": url.username, "password": url.password or ""}}},
        "compute_logs": {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
                         "config": {"bucket": logs_bucket, "prefix": LOGS_PREFIX, "local_dir": str(staging),
                                    "endpoint_url": s3_endpoint, "skip_empty_files": True}},
    }
    with instance_for_test(overrides=overrides) as test_instance:
        yield test_instance, logs_bucket, staging, str(url.set(drivername="postgresql+psycopg2"))


def log_owners(s3_endpoint: str, bucket: str) -> set[str]:
    """The first path segment under storage/ of every compute-log object: a run id or a tick's namespace."""
    pages = make_s3_client(s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                                   Prefix=f"{LOGS_PREFIX}/storage/")
    return {o["Key"].split("/")[3] for page in pages for o in page.get("Contents", [])}


def upload_logs(instance: DagsterInstance, log_key: list[str]) -> None:
    """A step's stderr as a run worker captures it: staged locally, uploaded on completion, the file removed."""
    with instance.compute_log_manager.open_log_stream(log_key, ComputeIOType.STDERR) as stream:
        stream.write(f"log of {log_key}\n")


def test_the_pass_as_of_31_days_on_keeps_only_unfinished_newer_and_latest_materialization_runs(
        instance, s3_endpoint):
    instance, logs_bucket, staging, storage_url = instance
    first_a = materialize([thing], partition_key="ws_a", instance=instance).run_id
    latest_a = materialize([thing], partition_key="ws_a", instance=instance).run_id
    first_b = materialize([thing], partition_key="ws_b", instance=instance).run_id
    failed = materialize([broken], instance=instance, raise_on_error=False).run_id
    newer = materialize([thing], partition_key="ws_b", instance=instance).run_id
    running = DagsterRun(job_name="alerts_export_job", run_id="0f0f0f0f-0000-4000-8000-000000000001",
                         status=DagsterRunStatus.STARTED)
    instance.add_run(running)
    finished = [first_a, latest_a, first_b, failed, newer]
    assert instance.get_run_by_id(failed).status == DagsterRunStatus.FAILURE
    for run_id in [*finished, running.run_id]:
        upload_logs(instance, [run_id, "compute_logs", "step"])
    # A sensor tick's logs (not a run's), and a staged folder left by a run that died before uploading.
    upload_logs(instance, ["tick_namespace", "sensor", "tick1"])
    (staging / first_a / "compute_logs").mkdir(parents=True, exist_ok=True)
    (staging / first_a / "compute_logs" / "died.out").write_text("partial")
    assert log_owners(s3_endpoint, logs_bucket) >= {*finished, running.run_id}
    # The newer run finished after the others: five days into the period the pass judges.
    now = datetime.now(UTC)
    engine = create_engine(storage_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET update_timestamp = :t WHERE run_id = :r"),
                     {"t": (now + timedelta(days=5)).replace(tzinfo=None), "r": newer})
    engine.dispose()
    as_of = now + timedelta(days=31)

    dry = prune_run_history(InstanceRunHistory(instance), as_of, 30, batch_size=2, dry_run=True)
    assert (dry.runs_examined, dry.runs_deleted, dry.runs_protected) == (4, 3, 1), dry.render()
    assert all(instance.get_run_by_id(run_id) for run_id in finished)

    config = {"ops": {"dagster_history_cleanup": {"config": {"as_of": as_of.isoformat()}}}}
    result = dagster_history_cleanup_job.execute_in_process(run_config=config, instance=instance)
    assert result.success
    metadata = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT").step_output_data.metadata
    assert metadata["runs_deleted"].value == 3 and metadata["runs_protected"].value == 1

    remaining = {r.run_id for r in instance.get_runs()}
    assert remaining == {latest_a, newer, running.run_id, result.run_id}
    for gone in (first_a, first_b, failed):
        assert not instance.all_logs(gone)
    engine = create_engine(storage_url)
    with engine.connect() as conn:
        for table in ("runs", "run_tags", "event_logs"):
            left = conn.execute(text(f"SELECT count(*) FROM {table} WHERE run_id IN :ids").bindparams(
                bindparam("ids", expanding=True)), {"ids": [first_a, first_b, failed]})
            assert left.scalar() == 0, table
    engine.dispose()
    assert instance.all_logs(latest_a)
    # Every partition still shows its latest materialization.
    assert instance.get_materialized_partitions(AssetKey("thing")) == {"ws_a", "ws_b"}
    assert instance.get_latest_materialization_event(AssetKey("thing")).run_id == newer
    owners = log_owners(s3_endpoint, logs_bucket)
    assert not owners & {first_a, first_b, failed, "tick_namespace"}, owners
    assert {latest_a, newer, running.run_id} <= owners
    staged = {p.name for p in staging.iterdir()}
    assert not staged & {first_a, first_b, failed, latest_a, newer}, staged
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700


def test_the_pass_within_the_period_deletes_nothing(instance):
    instance, _bucket, _staging, _url = instance
    run_id = materialize([thing], partition_key="ws_a", instance=instance).run_id
    materialize([thing], partition_key="ws_a", instance=instance)
    summary = prune_run_history(InstanceRunHistory(instance), datetime.now(UTC), 30)
    assert summary.ok and summary.runs_deleted == 0 and instance.get_run_by_id(run_id)


def test_the_schedule_judges_as_of_its_tick_and_skips_while_a_pass_runs():
    tick = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)
    with instance_for_test() as instance:
        request = dagster_history_cleanup_schedule(build_schedule_context(instance=instance,
                                                                          scheduled_execution_time=tick))
        assert isinstance(request, RunRequest)
        assert request.run_config["ops"]["dagster_history_cleanup"]["config"]["as_of"] == tick.isoformat()
        instance.add_run(DagsterRun(job_name=dagster_history_cleanup_job.name, run_id="1" * 8 + "-0000-4000-8000-"
                                    + "0" * 12, status=DagsterRunStatus.STARTED))
        skipped = dagster_history_cleanup_schedule(build_schedule_context(instance=instance,
                                                                          scheduled_execution_time=tick))
        assert not isinstance(skipped, RunRequest)


def test_the_cleanup_command_as_of_31_days_on_prunes_the_instance_of_dagster_home(
        instance, tmp_path, monkeypatch, redis_url, s3_endpoint, bucket):
    import yaml
    from click.testing import CliRunner

    from eclipse_exports.cli import main

    instance, _logs_bucket, _staging, _url = instance
    old = materialize([thing], partition_key="ws_a", instance=instance).run_id
    latest = materialize([thing], partition_key="ws_a", instance=instance).run_id
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(
        {"storage": {"postgres": {"postgres_url": instance.run_storage.postgres_url}}}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in (("ECLIPSE_REDIS_URL", redis_url), ("ECLIPSE_S3_BUCKET", bucket),
                        ("AWS_ENDPOINT_URL", s3_endpoint), ("ECLIPSE_DATA_DIR", str(tmp_path / "data"))):
        monkeypatch.setenv(name, value)
    as_of = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    result = CliRunner().invoke(main, ["cleanup", "--as-of", as_of])
    assert result.exit_code == 0, result.output
    assert "Dagster history as of" in result.output and "runs deleted: 1 of 2" in result.output
    assert instance.get_run_by_id(old) is None and instance.get_run_by_id(latest) is not None


def test_the_run_commands_sqlite_instance_prunes_run_by_run_with_its_local_compute_logs():
    """The run command's instance (SQLite storage, a file per run's events, local compute logs)."""
    with instance_for_test() as sqlite_instance:
        old = materialize([thing], partition_key="ws_a", instance=sqlite_instance).run_id
        latest = materialize([thing], partition_key="ws_a", instance=sqlite_instance).run_id
        upload_logs(sqlite_instance, [old, "compute_logs", "step"])
        logs = sqlite_instance.compute_log_manager
        assert os.path.exists(logs.get_captured_local_path([old, "compute_logs", "step"], "err"))
        summary = prune_run_history(InstanceRunHistory(sqlite_instance), datetime.now(UTC) + timedelta(days=31), 30)
        assert summary.ok and (summary.runs_deleted, summary.runs_protected) == (1, 1), summary.render()
        assert sqlite_instance.get_run_by_id(old) is None and not sqlite_instance.all_logs(old)
        assert sqlite_instance.get_run_by_id(latest) is not None
        assert not os.path.exists(logs.get_captured_local_path([old, "compute_logs", "step"], "err"))
