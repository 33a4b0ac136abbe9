"""Forged and incomplete status hashes (the web app can write them): every command answers with one line and a
non-zero exit, never a traceback, and never a link to another tenant's file."""

import json
from datetime import UTC, datetime

import pytest

from eclipse_exports.audit.trail import AuditTrail
from tests.cli.test_cli import cli, job

GLOBEX_KEY = "tenant-files/workspaces/ws_globex/exports/20260101T000000Z-alerts-theirs.csv"


@pytest.fixture
def globex_file(storage):
    with storage.open_upload(GLOBEX_KEY, "text/csv") as upload:
        upload.write(b"id\nsecret\n")
    return GLOBEX_KEY


def one_line_refusal(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_hash_of_one_workspace_naming_another_tenants_file_gets_no_link(env, redis_client, globex_file):
    job(redis_client, "forged", "completed", filePath=globex_file, expiresAt="2099-01-01T00:00:00Z")
    refused = one_line_refusal(cli(env, "url", "forged"))
    assert "lies outside workspace 'ws_a'" in refused and "https://" not in refused
    entries = list(AuditTrail(redis_client).entries("ws_a"))
    refusal = [e for e in entries if e.event == "key_refused"]
    assert len(refusal) == 1 and refusal[0].job_id == "forged" and refusal[0].details["key"] == globex_file
    assert refusal[0].actor == "system:cli"


def test_a_traversing_file_path_is_refused_clearly_not_by_s3(env, redis_client, globex_file):
    job(redis_client, "climb", "completed", expiresAt="2099-01-01T00:00:00Z",
        filePath="tenant-files/workspaces/ws_a/exports/../../ws_globex/exports/20260101T000000Z-alerts-theirs.csv")
    assert "contains '../'" in one_line_refusal(cli(env, "url", "climb"))


@pytest.mark.parametrize("fields, message", [
    ({"filePath": "tenant-files/workspaces/ws_a/exports/20260101T000000Z-alerts-x.csv"}, "no expiresAt"),
    ({"filePath": "tenant-files/workspaces/ws_a/exports/20260101T000000Z-alerts-x.csv", "expiresAt": "soon"},
     "expiresAt 'soon' is not an ISO-8601"),
])
def test_a_completed_hash_without_a_usable_expiry_gets_one_line(env, redis_client, fields, message):
    job(redis_client, "partial", "completed", **fields)
    if "expiresAt" not in fields:
        redis_client.hdel("eclipse:exports:job:partial", "expiresAt")
    assert message in one_line_refusal(cli(env, "url", "partial"))


def test_a_hash_without_a_workspace_or_with_a_forged_one_gets_one_line(env, redis_client):
    key = "eclipse:exports:job:nows"
    redis_client.hset(key, mapping={"id": "nows", "status": "completed", "expiresAt": "2099-01-01T00:00:00Z",
                                    "filePath": "tenant-files/workspaces/ws_a/exports/20260101T000000Z-alerts-x.csv"})
    assert "no workspaceId" in one_line_refusal(cli(env, "url", "nows"))
    redis_client.hset(key, "workspaceId", "../ws_a")
    assert "is not a workspace id" in one_line_refusal(cli(env, "url", "nows"))


def test_status_jobs_and_retry_answer_a_malformed_hash_in_one_line(env, redis_client):
    redis_client.hset("eclipse:exports:job:junk", mapping={
        "id": "junk", "workspaceId": "ws_a", "status": "completed", "rowCount": "many", "byteSize": "lots",
        "createdAt": datetime.now(UTC).isoformat()})
    redis_client.zadd("eclipse:exports:workspace:ws_a:jobs", {"junk": 1})
    assert "malformed status hash" in one_line_refusal(cli(env, "status", "junk"))
    listed = cli(env, "jobs", "--workspace", "ws_a")
    assert listed.exit_code == 0 and "many" in listed.stdout
    redis_client.hset("eclipse:exports:job:junk", mapping={"status": "failed", "request": "{not json"})
    assert "stored request is not readable" in one_line_refusal(cli(env, "retry", "junk"))
    redis_client.hset("eclipse:exports:job:junk", "request", json.dumps({"id": "junk", "resourceType": "x"}))
    assert "stored request is invalid" in one_line_refusal(cli(env, "retry", "junk"))
