"""Object storage on a real S3 endpoint (moto's server over HTTP): keys, multipart uploads, presigning."""

import urllib.request
from datetime import UTC, date, datetime

import pytest

from eclipse_exports.storage.multipart import UploadAborted


def test_export_key_follows_the_contract(storage):
    key = storage.export_key("ws_a", "alerts", "job-1", "csv.gz", datetime(2026, 11, 29, 8, 5, 3, tzinfo=UTC))
    assert key == "tenant-files/workspaces/ws_a/exports/20261129T080503Z-alerts-job-1.csv.gz"
    assert storage.report_key("ws_a", date(2026, 11, 23)) == (
        "tenant-files/workspaces/ws_a/reports/2026-11-23-executive-report.html")


@pytest.mark.parametrize("workspace, job", [("../ws_b", "j"), ("ws_a", "../../ws_b/x"), ("ws/a", "j"),
                                            ("ws_a", "j?x=1"), ("", "j"), ("ws_a", "j" * 65)])
def test_keys_refuse_anything_but_contract_ids(storage, workspace, job):
    with pytest.raises(ValueError):
        storage.export_key(workspace, "alerts", job, "csv", datetime.now(UTC))


def test_multipart_upload_streams_parts_and_presigned_url_serves_them(storage):
    key = storage.export_key("ws_a", "alerts", "big", "csv", datetime.now(UTC))
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with storage.open_upload(key, "text/csv", "big.csv") as upload:
        upload._part_bytes = 5 * 1024 * 1024
        for _ in range(12):
            upload.write(chunk)
    assert upload.bytes_written == 12 * len(chunk)
    body = urllib.request.urlopen(storage.presign(key, 60, workspace_id="ws_a")).read()
    assert body == chunk * 12
    head = storage.client.head_object(Bucket=storage.bucket, Key=key)
    assert head["ContentType"] == "text/csv"
    assert head["ServerSideEncryption"] == "AES256"  # the default, on a multipart upload too
    assert "big.csv" in head["ContentDisposition"]


def test_failed_upload_is_aborted_and_leaves_nothing(storage):
    key = storage.export_key("ws_a", "alerts", "broken", "csv", datetime.now(UTC))
    with pytest.raises(RuntimeError, match="source broke"):
        with storage.open_upload(key, "text/csv") as upload:
            upload._part_bytes = 5 * 1024 * 1024
            upload.write(b"x" * (11 * 1024 * 1024))
            raise RuntimeError("source broke")
    assert upload._upload_id is not None  # parts had been sent
    assert storage.pending_multipart_uploads() == []
    assert not storage.exists(key)


def test_completion_failure_aborts(storage):
    key = storage.export_key("ws_a", "alerts", "lost", "csv", datetime.now(UTC))
    upload = storage.open_upload(key, "text/csv")
    upload._part_bytes = 5 * 1024 * 1024
    upload.write(b"y" * (6 * 1024 * 1024))
    storage.client.abort_multipart_upload(Bucket=storage.bucket, Key=key, UploadId=upload._upload_id)
    with pytest.raises(UploadAborted):
        upload.complete()
    assert storage.pending_multipart_uploads() == []
    assert not storage.exists(key)


def test_small_file_is_one_put_and_counts_toward_quota(storage):
    key = storage.export_key("ws_a", "actions", "small", "json", datetime.now(UTC))
    with storage.open_upload(key, "application/json") as upload:
        upload.write(b"[]\n")
        assert len(upload._buffer) == 3  # a small file's buffer is its size, not a whole 5 MiB part
    assert storage.exists(key)
    assert storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read() == b"[]\n"
    assert storage.workspace_export_bytes("ws_a") == 3
    assert storage.workspace_export_bytes("ws_b") == 0


def test_parts_answered_with_errors_are_sent_again_from_their_reused_buffers(storage, s3_endpoint):
    """Twelve parts through three reused buffers, writes straddling part boundaries, and S3 answering 500 to
    three of the part uploads: botocore sends those parts again (reading each one's buffer from the start),
    and the object is byte for byte what was written."""
    import hashlib
    import random

    from eclipse_exports.storage.client import ExportStorage, make_s3_client
    from eclipse_exports.storage.multipart import MAX_PARTS_IN_FLIGHT
    from tests.s3_fault_proxy import S3FaultProxy

    data = random.Random(7).randbytes(12 * 5 * 1024 * 1024 - 12_345)
    key = storage.export_key("ws_a", "alerts", "resent", "csv", datetime.now(UTC))
    with S3FaultProxy(s3_endpoint) as proxy:
        failing = proxy.inject(method="PUT", query=r"partNumber=(3|7|11)$", status=500, times=3)
        flaky = ExportStorage(make_s3_client(proxy.url), storage.bucket, storage.prefix)
        with flaky.open_upload(key, "text/csv") as upload:
            upload._part_bytes = 5 * 1024 * 1024
            for start in range(0, len(data), 3_000_017):
                upload.write(data[start:start + 3_000_017])
        assert failing.hits == 3
    assert upload._buffers_made == MAX_PARTS_IN_FLIGHT + 1
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    stored = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert len(stored) == len(data) and stored == data
