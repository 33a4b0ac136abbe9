"""The export assets materialized with real resources, and the run-failure backstop sensor."""

import pytest
from dagster import AssetSelection, DagsterInstance, build_run_status_sensor_context, materialize

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

ALERTS, INFRINGEMENTS, ACTIONS, _AUDIT_LOGS, _EXPORT_AUDIT, REPORT = EXPORT_ASSETS


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
               '"format":"jsonl","options":{"compression":"gzip"}}')
    result = materialize([INFRINGEMENTS], partition_key="ws_b", instance=instance, resources=resources,
                         run_config=run_config("infringements_export", payload), tags={"eclipse/job_id": "req-7"})
    assert result.success
    metadata = result.asset_materializations_for_node("infringements_export")[0].metadata
    status = JobStatusStore(redis_client).get("req-7")
    expected = expected_rows("infringements", "ws_b")
    assert metadata["job_id"].value == "req-7" and metadata["format"].value == "jsonl"
    assert metadata["requested_by"].value == "u_b" and metadata["scope"].value == "full"
    assert metadata["filters"].value == {} and metadata["options"].value == {"compression": "gzip",
                                                                             "excelCompatible": False}
    assert metadata["dagster/row_count"].value == len(expected) == int(status["rowCount"])
    assert metadata["byte_size"].value == int(status["byteSize"])
    assert metadata["size"].value.endswith(" KiB")
    assert metadata["s3_key"].value == status["filePath"] and status["filePath"].endswith(".jsonl.gz")
    assert metadata["download"].value == "eclipse-exports url req-7"
    assert "X-Amz-Signature" not in str(metadata) and "test-secret-key" not in str(metadata)
    assert metadata["rows_per_second"].value > 0 and len(metadata["sha256"].value) == 64
    preview = metadata["preview"].value.splitlines()
    assert preview[0].startswith("| id | title |") and len(preview) == 2 + 5
    assert status["status"] == "completed" and status["runId"] == result.run_id
    data = fetch(resources, status["filePath"])
    assert read_rows(data, "jsonl", gzipped=True) == expected_for(expected, "jsonl")
    stored = resources["storage"].get_storage().client.head_object(
        Bucket=resources["storage"].get_storage().bucket, Key=status["filePath"])
    assert stored["ContentType"] == "application/gzip"
    assert stored["ContentDisposition"].endswith('.jsonl.gz"')

    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert set(checks) == {"file_intact", "rows_complete"} and all(c.passed for c in checks.values())
    assert checks["rows_complete"].partition == "ws_b"
    assert checks["rows_complete"].metadata["rows_read"].value == len(expected)
    # The metadata is the materialization's alone, not repeated on the step's output event.
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert outputs and all(not e.event_specific_data.metadata for e in outputs)
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["eclipse/progress"] == f"100% · {len(expected)}/{len(expected)} rows"


def test_a_filtered_export_is_an_observation_not_the_partitions_materialization(instance, resources, redis_client):
    full = materialize([INFRINGEMENTS], partition_key="ws_b", instance=instance, resources=resources)
    payload = ('{"id":"req-8","workspaceId":"ws_b","userId":"u_b","resourceType":"infringements",'
               '"format":"csv","filters":{"severity":["high","low"]}}')
    filtered = materialize([INFRINGEMENTS], partition_key="ws_b", instance=instance, resources=resources,
                           run_config=run_config("infringements_export", payload))
    assert full.success and filtered.success
    assert filtered.asset_materializations_for_node("infringements_export") == []
    observation = next(e.asset_observation_data.asset_observation for e in filtered.all_events
                       if e.event_type_value == "ASSET_OBSERVATION")
    expected = expected_rows("infringements", "ws_b", severity=["high", "low"])
    # Its own keys only: the UI shows later observations over the materialization's metadata of equal keys.
    assert set(observation.metadata) == {"filtered_export", "filtered_export_preview"}
    summary = observation.metadata["filtered_export"].value
    assert observation.partition == "ws_b" and summary["job_id"] == "req-8"
    assert summary["scope"] == 'filtered: {"severity": ["high", "low"]}'
    assert summary["dagster/row_count"] == len(expected)
    assert "not a whole-workspace export" in observation.description
    assert summary["verification"].endswith(f"with all {len(expected)} rows")
    latest = instance.get_latest_materialization_event(INFRINGEMENTS.key)
    assert latest.run_id == full.run_id
    assert latest.asset_materialization.metadata["scope"].value == "full"
    status = JobStatusStore(redis_client).get("req-8")
    assert status["status"] == "completed" and int(status["rowCount"]) == len(expected)


def test_the_checks_fail_with_the_cause_once_the_file_is_tampered_with_or_truncated(instance, resources):
    """Run alone (the UI's "Execute" on the checks), the checks re-verify the partition's latest file."""
    result = materialize([ALERTS], partition_key="ws_a", instance=instance, resources=resources)
    key = result.asset_materializations_for_node("alerts_export")[0].metadata["s3_key"].value
    storage = resources["storage"].get_storage()
    data = fetch(resources, key)
    checks_only = AssetSelection.checks_for_assets(ALERTS)

    def verify_again() -> dict:
        run = materialize([ALERTS], instance=instance, resources=resources, selection=checks_only,
                          tags={"dagster/partition": "ws_a"})
        assert run.success and not run.asset_materializations_for_node("alerts_export")
        return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
                for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}

    assert all(c.passed for c in verify_again().values())
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType="text/csv; charset=utf-8")
    checks = verify_again()  # the same bytes, stored without server-side encryption
    assert not checks["file_intact"].passed and checks["rows_complete"].passed
    assert checks["file_intact"].description == "stored with server-side encryption none, not AES256 (ECLIPSE_S3_SSE)"
    tampered = data.replace(b"alt_ws_a_0001", b"alt_ws_a_9999", 1)
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=tampered, ContentType="text/csv; charset=utf-8")
    checks = verify_again()
    assert not checks["file_intact"].passed and checks["rows_complete"].passed
    assert "SHA-256 of the stored object" in checks["file_intact"].description
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=data[: len(data) // 3],
                              ContentType="text/csv; charset=utf-8")
    checks = verify_again()
    assert not checks["file_intact"].passed and not checks["rows_complete"].passed
    assert f"the upload wrote {len(data):,}" in checks["file_intact"].description
    assert checks["rows_complete"].partition == "ws_a"
    assert ("does not parse as CSV" in checks["rows_complete"].description
            or "rows; the export's snapshot counted" in checks["rows_complete"].description)


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
    assert instance.get_run_by_id(result.run_id).tags["eclipse/error_code"] == "too_large"


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
    storage = resources["storage"].get_storage()
    stored = storage.client.head_object(Bucket=storage.bucket, Key=status["filePath"])
    assert stored["ContentDisposition"].startswith("inline;") and stored["ContentType"].startswith("text/html")
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) == 2 and all(c.passed for c in checks)
