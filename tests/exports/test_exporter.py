"""run_export against real services: rows from the database land in S3 exactly, statuses in Redis."""

import json
import urllib.request

import pytest

from eclipse_exports.audit.trail import AuditTrail
from eclipse_exports.exports.run import ExportFailed, ExportLimits, run_export
from eclipse_exports.models import ErrorCode, ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from tests.dataset import expected_rows
from tests.readback import expected_for, read_rows


def make_request(job_id="job-1", workspace="ws_a", user="u_analyst", resource="alerts", fmt="csv", **extra):
    payload = {"id": job_id, "workspaceId": workspace, "userId": user, "resourceType": resource, "format": fmt,
               **extra}
    return ExportRequest.from_payload(json.dumps(payload))


def export(source, storage, redis_client, request, limits=None, progress=None):
    return run_export(request, engine=source, storage=storage, status=JobStatusStore(redis_client),
                      limits=limits or ExportLimits(), run_id="run-123", on_progress=progress, batch_rows=40)


def fetch(storage, key) -> bytes:
    return storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("resource, fmt, options", [
    ("alerts", "csv", {}),
    ("alerts", "parquet", {}),
    ("infringements", "json", {"compression": "gzip"}),
    ("actions", "jsonl", {}),
    ("actions", "csv", {"excelCompatible": True, "compression": "gzip"}),
])
def test_export_lands_in_s3_with_exactly_the_workspace_rows(source, storage, redis_client, resource, fmt, options):
    request = make_request(resource=resource, fmt=fmt, options=options)
    seen = []
    result = export(source, storage, redis_client, request,
                    progress=lambda done, total, eta: seen.append((done, total, eta)))
    expected = expected_rows(resource, "ws_a")
    data = fetch(storage, result.key)
    gz = options.get("compression") == "gzip"
    assert read_rows(data, fmt, gzipped=gz) == expected_for(expected, fmt)
    assert result.row_count == len(expected) and result.byte_size == len(data)
    assert result.key.startswith("tenant-files/workspaces/ws_a/exports/")
    assert result.key.endswith(f"-{resource}-job-1.{request.extension}")
    assert seen[-1][:2] == (len(expected), len(expected)) and len(seen) >= 3
    assert all(eta is not None and eta >= 0 for _, _, eta in seen[1:])  # an estimate from the first batch on

    status = JobStatusStore(redis_client).get("job-1")
    assert status["status"] == "completed" and status["progress"] == "100"
    assert status["rowCount"] == str(len(expected)) and status["byteSize"] == str(len(data))
    assert status["filePath"] == result.key and status["runId"] == "run-123"
    assert status["startedAt"].endswith("Z") and status["completedAt"].endswith("Z")
    assert urllib.request.urlopen(status["downloadUrl"]).read() == data


def test_filters_reach_the_file(source, storage, redis_client):
    request = make_request(filters={"severity": ["high"], "brand": ["Alpha"], "from": "2026-10-05T00:00:00Z"})
    result = export(source, storage, redis_client, request)
    expected = expected_rows("alerts", "ws_a", severity=["high"], brand=["Alpha"],
                             date_from=request.filters.date_from)
    assert 0 < len(expected) < 100
    assert read_rows(fetch(storage, result.key), "csv") == expected_for(expected, "csv")


def test_too_large_fails_before_writing_anything(source, storage, redis_client):
    with pytest.raises(ExportFailed) as info:
        export(source, storage, redis_client, make_request(), limits=ExportLimits(max_export_rows=10))
    assert info.value.code is ErrorCode.TOO_LARGE
    assert "150 rows match" in str(info.value) and "limit is 10" in str(info.value)
    assert "Narrow the filters" in str(info.value)
    assert list(storage.iter_objects("")) == []
    assert storage.pending_multipart_uploads() == []


def test_quota_exceeded(source, storage, redis_client):
    export(source, storage, redis_client, make_request(job_id="first"))
    with pytest.raises(ExportFailed) as info:
        export(source, storage, redis_client, make_request(job_id="second"),
               limits=ExportLimits(workspace_quota_bytes=100))
    assert info.value.code is ErrorCode.QUOTA_EXCEEDED


@pytest.mark.parametrize("user, resource, code", [
    ("u_viewer", "actions", ErrorCode.FORBIDDEN),
    ("u_b", "alerts", ErrorCode.FORBIDDEN),
    ("u_arch", "alerts", ErrorCode.WORKSPACE_INACTIVE),
])
def test_run_rechecks_access(source, storage, redis_client, user, resource, code):
    workspace = "ws_arch" if user == "u_arch" else "ws_a"
    with pytest.raises(ExportFailed) as info:
        export(source, storage, redis_client, make_request(user=user, resource=resource, workspace=workspace))
    assert info.value.code is code
    assert list(storage.iter_objects("")) == []


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    from eclipse_exports.local.services import free_port

    class Collect:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            self.messages.append(envelope)
            return "250 OK"

    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}", handler.messages
    controller.stop()


def test_email_delivery_goes_to_the_users_own_address(source, storage, redis_client, smtp_server):
    url, inbox = smtp_server
    result = export(source, storage, redis_client, make_request(delivery="email"),
                    limits=ExportLimits(smtp_url=url))
    assert [m.rcpt_tos for m in inbox] == [["u_analyst@mail.example"]]
    body = inbox[0].content.decode()
    assert "150" in body and result.key.rsplit("/", 1)[-1] in body
    assert JobStatusStore(redis_client).get("job-1")["status"] == "completed"
    trail = [(e.event, e.details.get("to")) for e in AuditTrail(redis_client).entries(result.request.workspace_id)]
    assert trail[-3:] == [("completed", None), ("link_issued", None), ("emailed", "u_analyst")]


def test_email_delivery_without_smtp_fails_before_exporting(source, storage, redis_client):
    with pytest.raises(ExportFailed, match="ECLIPSE_SMTP_URL is unset"):
        export(source, storage, redis_client, make_request(delivery="email"))
    assert list(storage.iter_objects("")) == []


@pytest.fixture
def refusing_smtp_server():
    """An SMTP server that takes the connection and refuses every message (a full mailbox, a policy block)."""
    from aiosmtpd.controller import Controller

    from eclipse_exports.local.services import free_port

    class Refuse:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            return "554 5.7.1 message refused by policy"

    controller = Controller(Refuse(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def test_an_email_that_fails_after_the_export_removes_the_file_and_its_usage(sqlite_engine, storage, redis_client,
                                                                              refusing_smtp_server):
    from eclipse_exports.retention.usage import WorkspaceUsage

    with pytest.raises(ExportFailed, match="exported but the email failed, so it was removed") as info:
        export(sqlite_engine, storage, redis_client, make_request(delivery="email"),
               limits=ExportLimits(smtp_url=refusing_smtp_server))
    assert info.value.code is ErrorCode.EXPORT_FAILED and "554" in str(info.value)
    assert list(storage.iter_objects("")) == [] and storage.pending_multipart_uploads() == []
    assert WorkspaceUsage(redis_client, storage).bytes_used("ws_a") == 0
    assert "downloadUrl" not in JobStatusStore(redis_client).get("job-1")


def test_a_member_without_an_email_address_fails_before_anything_is_written(tmp_path_factory, storage,
                                                                            redis_client, smtp_server):
    from tests.conftest import _sqlite_with
    from tests.dataset import DATASET, insert_dataset

    no_address = {**DATASET, "users": [{**u, "email": "  "} if u["id"] == "u_analyst" else u
                                       for u in DATASET["users"]]}
    engine = _sqlite_with(tmp_path_factory, lambda e: insert_dataset(e, no_address))
    url, inbox = smtp_server
    with pytest.raises(ExportFailed, match="user 'u_analyst' has no email address in workspace 'ws_a'") as info:
        export(engine, storage, redis_client, make_request(delivery="email"), limits=ExportLimits(smtp_url=url))
    assert info.value.code is ErrorCode.EXPORT_FAILED
    assert list(storage.iter_objects("")) == [] and storage.pending_multipart_uploads() == [] and inbox == []


def test_a_stored_file_that_fails_verification_stays_for_inspection_without_a_link(sqlite_engine, storage,
                                                                                  redis_client, s3_endpoint):
    """Someone overwrites the object between the upload and the read-back (held up 1.5 s by the fault proxy)."""
    import threading

    from eclipse_exports.exports.run import FileVerificationFailed
    from eclipse_exports.storage.client import ExportStorage, make_s3_client
    from tests.s3_fault_proxy import S3FaultProxy

    tampered = threading.Event()

    def overwrite_once_stored():
        for _ in range(300):
            keys = [o["Key"] for o in storage.iter_objects("") if "/exports/" in o["Key"]]
            if keys:
                storage.client.put_object(Bucket=storage.bucket, Key=keys[0], Body=b"id,title\nforged,row\n")
                tampered.set()
                return
            threading.Event().wait(0.05)

    with S3FaultProxy(s3_endpoint) as proxy:
        proxy.inject(method="GET", path=r"/exports/", delay=1.5)
        slow_reads = ExportStorage(make_s3_client(proxy.url), storage.bucket, storage.prefix)
        racer = threading.Thread(target=overwrite_once_stored)
        racer.start()
        with pytest.raises(FileVerificationFailed) as info:
            export(sqlite_engine, slow_reads, redis_client, make_request())
        racer.join()
    assert tampered.is_set()
    result = info.value.result
    assert info.value.code is ErrorCode.EXPORT_FAILED and "failed verification" in str(info.value)
    assert not result.verification.passed and result.download_url == "" and result.expires_at is None
    assert fetch(storage, result.key) == b"id,title\nforged,row\n"  # kept where it is, for inspection
    fields = JobStatusStore(redis_client).get("job-1")
    assert fields["status"] == "running" and "downloadUrl" not in fields and "filePath" not in fields
