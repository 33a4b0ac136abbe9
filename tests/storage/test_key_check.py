"""The one key check every presign and delete passes, and server-side encryption on every write (moto S3)."""

import urllib.request
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eclipse_exports.config import Settings
from eclipse_exports.storage.client import ExportStorage, make_s3_client, storage_from_settings
from eclipse_exports.storage.encryption import PlainHttpRefused, ServerSideEncryption, require_https
from eclipse_exports.storage.keys import KeyRefused, ObjectKeys

KEYS = ObjectKeys("tenant-files")
ACME_FILE = KEYS.export_key("ws_acme", "alerts", "job-1", "csv", datetime(2026, 11, 2, tzinfo=UTC))
GLOBEX_FILE = KEYS.export_key("ws_globex", "alerts", "job-2", "csv", datetime(2026, 11, 2, tzinfo=UTC))


def test_a_key_of_the_workspace_itself_passes_and_parses():
    assert KEYS.check_key(ACME_FILE, "ws_acme").job_id == "job-1"
    audit = KEYS.audit_key("ws_acme", date(2026, 11, 2))
    assert audit == "tenant-files/workspaces/ws_acme/audit/2026-11-02.jsonl.gz"
    assert KEYS.check_key(audit, "ws_acme").kind == "audit"


@pytest.mark.parametrize("key, why", [
    (GLOBEX_FILE, "lies outside workspace 'ws_acme'"),
    ("tenant-files/workspaces/ws_acme/exports/../../ws_globex/exports/x.csv", "contains '../'"),
    ("tenant-files/workspaces/ws_acme/./exports/x.csv", "contains '../'"),
    ("tenant-files/workspaces/ws_acme//exports/x.csv", "contains '../'"),
    ("tenant-files/workspaces/ws_acme/exports/a\nb.csv", "control character"),
    ("tenant-files/workspaces/ws_acme/exports/notes.txt", "not a file this project writes"),
    ("tenant-files/workspaces/ws_acmeX/exports/x.csv", "lies outside"),
    ("", "empty"),
    (None, "empty or not text"),
])
def test_keys_outside_the_workspace_or_with_traversal_are_refused_with_a_reason(key, why):
    with pytest.raises(KeyRefused, match=why.replace("(", r"\(")):
        KEYS.check_key(key, "ws_acme")


def test_the_workspace_id_itself_must_be_an_id():
    with pytest.raises(ValueError):
        KEYS.check_key(ACME_FILE, "../ws_acme")


def test_presign_and_delete_refuse_another_tenants_file_before_asking_s3(storage):
    key = storage.export_key("ws_globex", "alerts", "job-2", "csv", datetime.now(UTC))
    with storage.open_upload(key, "text/csv") as upload:
        upload.write(b"id\n1\n")
    with pytest.raises(KeyRefused):
        storage.presign(key, 60, workspace_id="ws_acme")
    with pytest.raises(KeyRefused):
        storage.delete(key, workspace_id="ws_acme")
    refused = storage.delete_keys([(key, "ws_acme")])
    assert refused and refused[0][0] == key and "outside workspace 'ws_acme'" in refused[0][1]
    assert storage.exists(key)
    assert urllib.request.urlopen(storage.presign(key, 60, workspace_id="ws_globex")).read() == b"id\n1\n"
    assert storage.delete_keys([(key, "ws_globex")]) == []
    assert not storage.exists(key)


@pytest.mark.parametrize("size", [10, 6 * 1024 * 1024], ids=["single-put", "multipart"])
def test_every_write_carries_the_configured_encryption_and_head_shows_it(s3_endpoint, bucket, size):
    client = make_s3_client(s3_endpoint)
    for sse, shown in ((ServerSideEncryption(), "AES256"),
                       (ServerSideEncryption("aws:kms", "alias/eclipse-exports"), "aws:kms"),
                       (ServerSideEncryption("none"), None)):
        storage = ExportStorage(client, bucket, "p", sse=sse)
        key = storage.export_key("ws_a", "alerts", f"j{size}{sse.mode.replace(':', '')}", "csv", datetime.now(UTC))
        with storage.open_upload(key, "text/csv") as upload:
            upload.write(b"x" * size)
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == shown
        if shown == "aws:kms":
            assert head["SSEKMSKeyId"].endswith("alias/eclipse-exports")
        assert storage.encryption_problem(key) is None
        assert urllib.request.urlopen(storage.presign(key, 60, workspace_id="ws_a")).read() == b"x" * size
    # A file written without encryption fails the check of a deployment that asks for it.
    plain = ExportStorage(client, bucket, "p", sse=ServerSideEncryption("none"))
    key = plain.export_key("ws_a", "alerts", "plain", "csv", datetime.now(UTC))
    with plain.open_upload(key, "text/csv") as upload:
        upload.write(b"x")
    problem = ExportStorage(client, bucket, "p").encryption_problem(key)
    assert problem == "stored with server-side encryption none, not AES256 (ECLIPSE_S3_SSE)"


def test_bad_encryption_settings_are_refused():
    with pytest.raises(ValueError, match="ECLIPSE_S3_SSE must be one of"):
        ServerSideEncryption("aws:kms:dsse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs ECLIPSE_S3_SSE=aws:kms"):
        ServerSideEncryption("AES256", "key-1")


def test_plain_http_is_refused_outside_loopback_unless_the_operator_opts_out(tmp_path):
    require_https("http://127.0.0.1:9000", "AWS_ENDPOINT_URL", False)
    require_https("https://s3.internal:9000", "AWS_ENDPOINT_URL", False)
    require_https(None, "AWS_ENDPOINT_URL", False)
    with pytest.raises(PlainHttpRefused, match="ECLIPSE_ALLOW_PLAIN_HTTP=1"):
        require_https("http://s3.internal:9000", "AWS_ENDPOINT_URL", False)
    env = {"ECLIPSE_DATA_DIR": str(tmp_path), "AWS_ENDPOINT_URL": "http://s3.internal:9000"}
    with pytest.raises(PlainHttpRefused):
        storage_from_settings(Settings.from_env(env))
    allowed = storage_from_settings(Settings.from_env({**env, "ECLIPSE_ALLOW_PLAIN_HTTP": "1",
                                                       "ECLIPSE_S3_SSE": "aws:kms",
                                                       "ECLIPSE_S3_SSE_KMS_KEY_ID": "k-1"}))
    assert allowed.sse == ServerSideEncryption("aws:kms", "k-1")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab_/.\\-%2F\n", max_size=60))
def test_no_key_that_passes_the_check_leaves_its_workspace(suffix):
    key = "tenant-files/workspaces/ws_acme/" + suffix
    try:
        parsed = KEYS.check_key(key, "ws_acme", project_key=False)
    except KeyRefused:
        return
    segments = key.split("/")
    assert key.startswith("tenant-files/workspaces/ws_acme/") and ".." not in segments and "." not in segments
    assert "" not in segments[:-1] and "\\" not in key and "\n" not in key
    assert parsed is None or parsed.workspace_id == "ws_acme"
