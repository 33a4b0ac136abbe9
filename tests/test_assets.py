"""The export assets materialized with real resources, and the run-failure backstop sensor."""

import pytest
from dagster import DagsterInstance, build_run_status_sensor_context, materialize

from eclipse_exports.assets import EXPORT_ASSETS, ExportConfig
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import (
    ExportLimitsResource,
    ExportStorageResource,
    RedisResource,
    SourceDatabaseResource,
)
from eclipse_exports.sensors import export_run_failure_sensor
from tests.dataset import expected_rows
from tests.readback import expected_for, read_rows

ALERTS, INFRINGEMENTS, ACTIONS, REPORT = EXPORT_ASSETS


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("workspaces", ["ws_a", "ws_b"])
        yield inst


@pytest.fixture
def resources(redis_url, sqlite_engine, s3_endpoint, bucket):
    return {
        "source_db": SourceDatabaseResource(url=str(sqlite_engine.url)),
        "redis": RedisResource(url=redis_url),
        "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint),
        "limits": ExportLimitsResource(),
    }


def fetch(resources, key) -> bytes:
    storage = resources["storage"].get_storage()
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def run_config(asset_name: str, payload: str) -> dict:
    request = ExportRequest.from_payload(payload)
    return {"ops": {asset_name: {"config": ExportConfig.from_request(request).model_dump()}}}


def test_requested_materialization_exports_and_records_metadata(instance, resources, redis_client):
    payload = ('{"id":"req-7","workspaceId":"ws_b","userId":"u_b","resourceType":"infringements",'
               '"format":"jsonl","filters":{"severity":["high","low"]}}')
    result = materialize([INFRINGEMENTS], partition_key="ws_b", instance=instance, resources=resources,
                         run_config=run_config("infringements_export", payload))
    assert result.success
    metadata = result.asset_materializations_for_node("infringements_export")[0].metadata
    status = JobStatusStore(redis_client).get("req-7")
    expected = expected_rows("infringements", "ws_b", severity=["high", "low"])
    assert metadata["job_id"].value == "req-7" and metadata["format"].value == "jsonl"
    assert metadata["row_count"].value == len(expected) == int(status["rowCount"])
    assert metadata["byte_size"].value == int(status["byteSize"])
    assert metadata["s3_uri"].value.endswith(status["filePath"])
    assert metadata["rows_per_second"].value > 0
    assert status["status"] == "completed" and status["runId"] == result.run_id
    assert read_rows(fetch(resources, status["filePath"]), "jsonl") == expected_for(expected, "jsonl")


def test_ui_or_backfill_materialization_exports_the_whole_partition_as_csv(instance, resources, redis_client):
    result = materialize([ALERTS], partition_key="ws_a", instance=instance, resources=resources)
    assert result.success
    job_id = f"dagster-{result.run_id}"
    status = JobStatusStore(redis_client).get(job_id)
    assert status["status"] == "completed" and status["format"] == "csv"
    assert read_rows(fetch(resources, status["filePath"]), "csv") == expected_for(expected_rows("alerts", "ws_a"),
                                                                                   "csv")
    assert instance.get_run_by_id(result.run_id).tags["eclipse/job_id"] == job_id


def test_too_large_fails_the_run_and_the_job(instance, resources, redis_client):
    resources["limits"] = ExportLimitsResource(max_export_rows=5)
    payload = '{"id":"huge","workspaceId":"ws_a","userId":"u_owner","resourceType":"actions","format":"csv"}'
    result = materialize([ACTIONS], partition_key="ws_a", instance=instance, resources=resources,
                         run_config=run_config("actions_export", payload), raise_on_error=False)
    assert not result.success
    status = JobStatusStore(redis_client).get("huge")
    assert status["status"] == "failed" and status["errorCode"] == "too_large"
    assert "150 rows match" in status["error"]
    assert list(resources["storage"].get_storage().iter_objects("")) == []


def test_run_failure_sensor_marks_a_crashed_run_failed(instance, resources, redis_client, redis_url):
    """The asset cannot even reach Redis; the backstop sensor records the failure with its cause."""
    broken = {**resources, "redis": RedisResource(url="redis://127.0.0.1:1/0")}
    payload = '{"id":"crash","workspaceId":"ws_a","userId":"u_owner","resourceType":"alerts","format":"csv"}'
    tags = {"eclipse/job_id": "crash"}
    result = materialize([ALERTS], partition_key="ws_a", instance=instance, resources=broken, tags=tags,
                         run_config=run_config("alerts_export", payload), raise_on_error=False)
    assert not result.success
    assert JobStatusStore(redis_client).get("crash") == {}
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = build_run_status_sensor_context(
        sensor_name="export_run_failure_sensor", dagster_event=failure, dagster_instance=instance,
        dagster_run=run, resources={"redis": RedisResource(url=redis_url), "storage": resources["storage"]},
    ).for_run_failure()
    export_run_failure_sensor(context)
    status = JobStatusStore(redis_client).get("crash")
    assert status["status"] == "failed" and status["errorCode"] == "export_failed"
    assert "ConnectionError" in status["error"] or "Connection" in status["error"]
    assert status["runId"] == result.run_id


def test_ui_materialization_of_a_report_renders_the_last_week_as_html(instance, resources, redis_client):
    result = materialize([REPORT], partition_key="ws_a", instance=instance, resources=resources)
    assert result.success
    status = JobStatusStore(redis_client).get(f"dagster-{result.run_id}")
    assert status["status"] == "completed" and status["format"] == "html"
    assert fetch(resources, status["filePath"]).startswith(b"<!DOCTYPE html>")
