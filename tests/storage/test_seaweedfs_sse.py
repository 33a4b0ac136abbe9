"""The run command's SeaweedFS (``weed mini``, the shipped version) with SSE-S3: what the local run uses by default.

The objects the project writes show ``AES256`` on HEAD, presigned links still serve the plain bytes, and the
bytes on SeaweedFS's disk are not the plain text."""

import os
import urllib.request
from datetime import UTC, datetime

import pytest

from eclipse_exports.local.services import free_port_pair, start_seaweedfs
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from eclipse_exports.storage.encryption import ServerSideEncryption

MARKER = b"eclipse-plaintext-marker-7f3a9c "


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    data = tmp_path_factory.mktemp("seaweedfs")
    service = start_seaweedfs(data / "weed", "eclipse-sse", "test-access-key", "test-secret-key-do-not-print",
                              s3_port=free_port_pair(), log_file=data / "weed.log")
    yield service, data / "weed"
    service.stop()


@pytest.mark.parametrize("size", [1000, 11 * 1024 * 1024], ids=["single-put", "multipart"])
def test_seaweedfs_stores_what_the_project_writes_encrypted(seaweedfs, size):
    service, data_dir = seaweedfs
    storage = ExportStorage(make_s3_client(service.url), "eclipse-sse")
    key = storage.export_key("ws_acme", "alerts", f"sse-{size}", "csv", datetime.now(UTC))
    body = os.urandom(size) + MARKER  # random bytes: SeaweedFS compresses nothing away
    with storage.open_upload(key, "text/csv") as upload:
        upload.write(body)
    assert storage.head(key)["ServerSideEncryption"] == "AES256"
    assert storage.encryption_problem(key) is None
    assert urllib.request.urlopen(storage.presign(key, 60, workspace_id="ws_acme")).read() == body
    on_disk = [p for p in data_dir.rglob("*") if p.is_file() and p.stat().st_size > 0 and MARKER in p.read_bytes()]
    assert on_disk == []


def test_without_encryption_the_same_bytes_are_found_on_disk(seaweedfs):
    """The control: the disk search above can find a file, so its empty answer means something."""
    service, data_dir = seaweedfs
    storage = ExportStorage(make_s3_client(service.url), "eclipse-sse", sse=ServerSideEncryption("none"))
    key = storage.export_key("ws_acme", "alerts", "plain", "csv", datetime.now(UTC))
    with storage.open_upload(key, "text/csv") as upload:
        upload.write(os.urandom(2000) + MARKER.replace(b"marker", b"contrl"))
    assert "ServerSideEncryption" not in storage.head(key)
    assert any(MARKER.replace(b"marker", b"contrl") in p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
