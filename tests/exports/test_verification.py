"""File verification on a real S3 endpoint: every format passes as written, and fails, with the cause,
once the stored object is tampered with or truncated."""

import gzip
import io
import json

import pytest

from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.exports.verification import ExpectedFile, verify_export_file
from eclipse_exports.models import ExportFormat, ExportRequest
from eclipse_exports.queue.status import JobStatusStore

CASES = [
    ("alerts", "csv", {}),
    ("alerts", "csv", {"compression": "gzip", "excelCompatible": True}),
    ("infringements", "json", {}),
    ("infringements", "json", {"compression": "gzip"}),
    ("actions", "jsonl", {}),
    ("actions", "jsonl", {"compression": "gzip"}),
    ("alerts", "parquet", {}),
    ("report", "html", {}),
]


def exported(sqlite_engine, storage, redis_client, resource, fmt, options, job_id="verify-1"):
    payload = {"id": job_id, "workspaceId": "ws_a", "userId": "u_analyst", "resourceType": resource, "format": fmt,
               "options": options}
    if resource == "report":
        payload["filters"] = {"from": "2026-10-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    return run_export(ExportRequest.from_payload(json.dumps(payload)), engine=sqlite_engine, storage=storage,
                      status=JobStatusStore(redis_client), limits=ExportLimits(), run_id="run-v", batch_rows=40)


def stored(storage, key) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


def replace_object(storage, key, body: bytes, content_type: str) -> None:
    """Store ``body`` as the project would (its server-side encryption included), so only the content differs."""
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=body, ContentType=content_type,
                              **storage.sse.put_args())


@pytest.mark.parametrize("resource, fmt, options", CASES)
def test_each_format_verifies_then_fails_when_tampered_or_truncated(sqlite_engine, storage, redis_client,
                                                                    resource, fmt, options):
    result = exported(sqlite_engine, storage, redis_client, resource, fmt, options)
    check = result.verification
    assert check.passed, check.summary()
    assert check.rows_read == result.row_count > 0 and check.stored_bytes == result.byte_size
    expected = check.expected
    data = stored(storage, result.key)

    # Tampered: one byte changed in the middle, same size, still parseable for the text formats.
    middle = len(data) // 2
    tampered = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
    replace_object(storage, result.key, tampered, result.file.content_type)
    again = verify_export_file(storage, expected)
    assert not again.intact and "SHA-256 of the stored object" in again.summary()
    assert again.stored_bytes == len(data)

    # Truncated: the second half gone; the size is wrong and the file no longer parses with every row.
    replace_object(storage, result.key, data[:middle], result.file.content_type)
    cut = verify_export_file(storage, expected)
    assert not cut.intact and not cut.readable
    assert f"stored object is {middle:,} bytes, the upload wrote {len(data):,}" in cut.summary()
    assert cut.content_problems and ("does not parse" in cut.content_problems[0]
                                     or "rows; the export's snapshot counted" in cut.content_problems[0])


def test_a_missing_object_and_a_wrong_row_count_are_named(sqlite_engine, storage, redis_client):
    result = exported(sqlite_engine, storage, redis_client, "alerts", "jsonl", {})
    expected = result.verification.expected
    fewer = ExpectedFile(**{**expected.__dict__, "row_count": expected.row_count + 1})
    check = verify_export_file(storage, fewer)
    assert check.intact and not check.readable
    assert check.content_problems == (f"holds {expected.row_count:,} rows; the export's snapshot counted "
                                      f"{expected.row_count + 1:,}",)
    storage.delete(result.key, workspace_id=result.request.workspace_id)
    gone = verify_export_file(storage, expected)
    assert gone.integrity_problems == (f"no object at key {result.key}",) and gone.rows_read is None


@pytest.mark.parametrize("body, problem", [
    (b'[{"id": "a"}, {"id": "b"}', "without its closing ']'"),
    (b'[{"id": "a"} {"id": "b"}]', "unexpected '{' after item 1"),
    (b'[{"id": "a"}, [1]]', "item 2 is not a JSON object"),
    (b'[{"id": "a"}] trailing', "data after the array's closing ']'"),
    (b'{"id": "a"}', "does not start with '['"),
    (b'[{"id": "a", "x": 1}]', "item 1 has columns id, x; expected id"),
])
def test_json_arrays_that_break_the_format_are_named(storage, body, problem):
    key = "workspaces/ws_a/exports/20261101T000000Z-alerts-broken.json"
    replace_object(storage, key, body, "application/json")
    import hashlib

    expected = ExpectedFile(key, ExportFormat.JSON, False, len(body), hashlib.sha256(body).hexdigest(), 2, ("id",))
    check = verify_export_file(storage, expected)
    assert check.intact and not check.readable and problem in check.content_problems[0], check.content_problems


def test_json_items_spanning_read_chunks_are_counted(storage, monkeypatch):
    """Items cut by chunk borders are read on: a 3-byte read size splits every item."""
    import hashlib

    import eclipse_exports.exports.verification as verification

    monkeypatch.setattr(verification, "READ_BYTES", 3)
    rows = [{"id": f"r{n}", "title": "ä \u2603 " * n} for n in range(50)]
    body = gzip.compress(json.dumps(rows).encode())
    key = "workspaces/ws_a/exports/20261101T000000Z-alerts-chunks.json.gz"
    replace_object(storage, key, body, "application/gzip")
    check = verify_export_file(storage, ExpectedFile(key, ExportFormat.JSON, True, len(body),
                                                     hashlib.sha256(body).hexdigest(), 50, ("id", "title")))
    assert check.passed and check.rows_read == 50, check.summary()
    assert io.BytesIO(body).read() == stored(storage, key)


def test_every_weekly_report_of_a_ranged_run_is_verified_on_its_own_partition(report_sqlite, s3_endpoint, bucket,
                                                                               monkeypatch):
    """executive_report records each partition itself; its file checks go with each partition's materialization."""
    from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize

    from eclipse_exports.assets import executive_report
    from eclipse_exports.resources import (
        ExportLimitsResource,
        ExportStorageResource,
        SmtpResource,
        SourceDatabaseResource,
    )

    monkeypatch.delenv("ECLIPSE_SMTP_URL", raising=False)
    resources = {"source_db": SourceDatabaseResource(url=str(report_sqlite.url)),
                 "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint),
                 "smtp": SmtpResource(url=None), "limits": ExportLimitsResource()}
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("workspaces", ["ws_north", "ws_quiet"])
        result = materialize([executive_report], instance=instance, resources=resources,
                             tags={"dagster/asset_partition_range_start": "2026-10-19|ws_north",
                                   "dagster/asset_partition_range_end": "2026-10-19|ws_quiet"})
        assert result.success
        materialized = {r.partition_key: r.storage_id for r in
                        instance.fetch_materializations(AssetKey("executive_report"), limit=10).records}
        assert set(materialized) == {"2026-10-19|ws_north", "2026-10-19|ws_quiet"}
        for check in ("file_intact", "rows_complete"):
            history = instance.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(AssetKey("executive_report"), check), limit=10)
            assert {r.partition: r.status.value for r in history} == {p: "SUCCEEDED" for p in materialized}
            for record in history:
                evaluation = record.event.asset_check_evaluation
                assert evaluation.target_materialization_data.storage_id == materialized[record.partition]
                if check == "rows_complete":
                    assert evaluation.description.startswith("parses as HTML with all ")
