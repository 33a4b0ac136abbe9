"""The command line against real Redis and S3: every command, its readable output, and every error path.

Commands run in-process through click's runner (exit codes and stderr as a shell sees them); the
env-file reading runs the real installed command in a subprocess.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from eclipse_exports.cli import main
from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.local.services import free_port
from eclipse_exports.models import ExportRequest, iso_utc
from eclipse_exports.queue.status import JobStatusStore

EXPORTS = Path(sys.executable).parent / "eclipse-exports"
PAYLOAD = {"workspaceId": "ws_a", "userId": "u_analyst", "resourceType": "alerts", "format": "csv",
           "filters": {"severity": ["high"]}}


@pytest.fixture
def env(tmp_path, redis_url, s3_endpoint, bucket, redis_client) -> dict:
    return {"ECLIPSE_DATA_DIR": str(tmp_path / "data"), "ECLIPSE_REDIS_URL": redis_url,
            "AWS_ENDPOINT_URL": s3_endpoint, "ECLIPSE_S3_BUCKET": bucket, "ECLIPSE_S3_PREFIX": "tenant-files"}


def cli(env: dict, *args: str):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def job(redis_client, job_id: str, status: str, **fields) -> None:
    """A status hash as the sensor and the run would have left it."""
    request = ExportRequest.from_payload(json.dumps({"id": job_id, **PAYLOAD}))
    store = JobStatusStore(redis_client)
    store.queued(request, datetime.now(UTC) - timedelta(minutes=5))
    store.write(job_id, {"status": status, **fields})


def test_request_status_and_jobs_read_well(env, redis_client):
    sent = cli(env, "request", "--workspace", "ws_a", "--user", "u_analyst", "--resource", "alerts", "--format",
               "csv", "--severity", "high")
    assert sent.exit_code == 0, sent.output
    job_id = sent.stdout.strip()
    shown = cli(env, "status", job_id)
    assert shown.exit_code == 0
    assert f"job        {job_id}" in shown.stdout and "status     pending" in shown.stdout
    assert 'scope      filtered: {"severity": ["high"]}' in shown.stdout
    raw = json.loads(cli(env, "status", job_id, "--json").stdout)
    assert raw["status"] == "pending" and raw["workspaceId"] == "ws_a" and json.loads(raw["request"])["id"] == job_id

    job(redis_client, "done-1", "completed", rowCount=1234, rowsWritten=1234, byteSize=81_920,
        filePath="tenant-files/workspaces/ws_a/exports/x.csv", expiresAt="2099-01-01T00:00:00Z", runId="r-1")
    job(redis_client, "bad-1", "failed", errorCode="too_large", error="12,000,000 rows match")
    listed = cli(env, "jobs", "--workspace", "ws_a")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["JOB", "RESOURCE", "FORMAT", "STATUS", "ROWS", "CREATED"]
    # Newest first: the last job written was indexed last.
    assert [line.split()[0] for line in lines[1:]] == ["bad-1", "done-1", job_id]
    assert "failed (too_large)" in lines[1] and "1,234" in lines[2] and "5 min ago" in lines[2]
    only_failed = cli(env, "jobs", "--workspace", "ws_a", "--status", "failed", "--limit", "5", "--json")
    assert [json.loads(line)["id"] for line in only_failed.stdout.splitlines()] == ["bad-1"]
    assert cli(env, "jobs", "--workspace", "ws_a", "--limit", "1").stdout.count("\n") == 2
    assert "no jobs for workspace 'ws_zz'" in cli(env, "jobs", "--workspace", "ws_zz").stderr

    done = cli(env, "status", "done-1").stdout
    assert "status     completed  1,234 rows, 80.0 KiB" in done and "download   eclipse-exports url done-1" in done
    failed = cli(env, "status", "bad-1")
    assert failed.exit_code == 1 and "error      too_large: 12,000,000 rows match" in failed.stdout
    assert "next       eclipse-exports retry bad-1" in failed.stdout


def test_ctrl_c_on_a_watch_exits_130_not_the_failed_jobs_1(env, redis_client):
    job(redis_client, "slow-1", "queued")
    # SIGINT as a terminal leaves it: a test run started in the background (`.ci/run &`) ignores SIGINT, and so
    # would its children, Python included.
    watch = subprocess.Popen([str(EXPORTS), "status", "slow-1", "--watch"], env={**os.environ, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        os.set_blocking(watch.stderr.fileno(), False)
        deadline, first = time.monotonic() + 60, b""
        while not first and time.monotonic() < deadline:  # its first redraw (on stderr): it is watching
            first = watch.stderr.read(1) or b""
            time.sleep(0.1)
        assert first, "the watch printed nothing in 60 s"
        watch.send_signal(signal.SIGINT)
        os.set_blocking(watch.stderr.fileno(), True)
        _out, err = watch.communicate(timeout=30)
        err = first + err
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 130 and err.decode().strip().endswith("Aborted!"), (watch.returncode, err)


def test_unknown_jobs_are_clear_errors(env):
    for command in (("status", "nope"), ("url", "nope"), ("retry", "nope")):
        result = cli(env, *command)
        assert result.exit_code == 2 and "unknown job 'nope'" in result.stderr, command
        # Which Redis was asked: a shell without the env file silently asks the machine's own one.
        port = env["ECLIPSE_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        assert f"in the Redis at 127.0.0.1:{port}/" in " ".join(result.stderr.split()), command
    two_lines = cli(env, "status", "abc\ndef")
    assert two_lines.exit_code == 2 and "unknown job 'abc\\ndef'" in two_lines.stderr
    assert len(two_lines.stderr.strip().splitlines()) == 1, two_lines.stderr


def test_retry_sends_the_same_request_under_a_new_id_and_refuses_the_rest(env, redis_client):
    job(redis_client, "broken", "failed", errorCode="export_failed", error="S3 was down")
    retried = cli(env, "retry", "broken")
    assert retried.exit_code == 0, retried.output
    new_id = retried.stdout.strip()
    status = JobStatusStore(redis_client).get(new_id)
    assert new_id != "broken" and status["retryOf"] == "broken" and status["status"] == "pending"
    old, new = (json.loads(JobStatusStore(redis_client).get(j)["request"]) for j in ("broken", new_id))
    assert {k: v for k, v in new.items() if k not in ("id", "createdAt")} == \
        {k: v for k, v in old.items() if k not in ("id", "createdAt")}
    [(_, fields)] = redis_client.xrange("eclipse:exports:requests")
    assert json.loads(fields[b"payload"])["id"] == new_id
    assert "retry of   broken" in cli(env, "status", new_id).stdout

    job(redis_client, "old", "expired")
    assert cli(env, "retry", "old").exit_code == 0
    refusals = {"done": ("completed", "completed; nothing to retry"), "busy": ("running", "is running, not finished"),
                "no": ("rejected", "was rejected")}
    for job_id, (state, message) in refusals.items():
        job(redis_client, job_id, state, errorCode="forbidden", error="viewer") if state == "rejected" else \
            job(redis_client, job_id, state)
        result = cli(env, "retry", job_id)
        assert result.exit_code == 2 and message in result.stderr, (job_id, result.stderr)


def test_url_gives_a_working_link_and_names_an_expired_file(env, redis_client, storage, sqlite_engine):
    request = ExportRequest.from_payload(json.dumps({"id": "live", **PAYLOAD}))
    result = run_export(request, engine=sqlite_engine, storage=storage, status=JobStatusStore(redis_client),
                        limits=ExportLimits(), run_id="r")
    link = cli(env, "url", "live")
    assert link.exit_code == 0, link.output
    assert urllib.request.urlopen(link.stdout.strip()).read() == \
        storage.client.get_object(Bucket=storage.bucket, Key=result.key)["Body"].read()

    JobStatusStore(redis_client).write("live", {"expiresAt": iso_utc(datetime.now(UTC) - timedelta(minutes=1))})
    expired = cli(env, "url", "live")
    assert expired.exit_code == 2 and "the file of job 'live' has expired" in expired.stderr
    job(redis_client, "gone", "expired")
    gone = cli(env, "url", "gone")
    assert gone.exit_code == 2 and "has expired" in gone.stderr and "eclipse-exports retry gone" in gone.stderr
    assert cli(env, "status", "gone").exit_code == 1


def test_unreachable_or_unauthenticated_services_are_named(env, redis_client, tmp_path):
    job(redis_client, "done", "completed", expiresAt="2099-01-01T00:00:00Z",
        filePath="tenant-files/workspaces/ws_a/exports/20260101T000000Z-alerts-done.csv")
    down = cli({**env, "ECLIPSE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "jobs", "--workspace", "ws_a")
    assert down.exit_code == 2 and "cannot reach Redis at redis://127.0.0.1:" in down.stderr
    assert "(from ECLIPSE_REDIS_URL)" in down.stderr

    # A process of its own: boto3 keeps the credentials it found for the life of a process.
    no_keys = subprocess.run([str(EXPORTS), "url", "done"], capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env})
    assert no_keys.returncode == 2 and no_keys.stderr.startswith("Error: no S3 credentials"), no_keys.stderr
    no_s3 = cli({**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, "url", "done")
    assert no_s3.exit_code == 2 and "cannot reach S3 at http://127.0.0.1:" in no_s3.stderr

    with _refusing_s3() as endpoint:
        refused = cli({**env, "AWS_ENDPOINT_URL": endpoint}, "url", "done")
    assert refused.exit_code == 2 and "refused the credentials (403)" in refused.stderr


def test_a_redis_that_wants_a_password_is_named(env, tmp_path):
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--requirepass", "s3cret-pass"], stdout=subprocess.DEVNULL)
    try:
        _wait_for(port)
        missing = cli({**env, "ECLIPSE_REDIS_URL": f"redis://127.0.0.1:{port}/0"}, "status", "x")
        assert missing.exit_code == 2 and "needs a password" in missing.stderr
        wrong = cli({**env, "ECLIPSE_REDIS_URL": f"redis://:wrong-pass@127.0.0.1:{port}/0"}, "status", "x")
        assert wrong.exit_code == 2 and "refused the credentials" in wrong.stderr
        assert "wrong-pass" not in wrong.stderr
    finally:
        server.terminate()
        server.wait()


def test_every_command_has_help_with_an_example(env):
    for command in main.commands:
        shown = cli(env, command, "--help")
        assert shown.exit_code == 0 and "Example" in shown.stdout, command


def test_a_second_shell_finds_the_running_product_through_the_env_file(tmp_path, redis_url, redis_client):
    """Only ECLIPSE_DATA_DIR set: the CLI reads $ECLIPSE_DATA_DIR/env.sh, as `dev` writes it."""
    job(redis_client, "from-env", "failed", errorCode="export_failed", error="x")
    data = tmp_path / "data"
    data.mkdir()
    (data / "env.sh").write_text(f"# ports\nexport ECLIPSE_REDIS_URL='{redis_url}'\n")
    bare = {"PATH": "/usr/bin:/bin", "ECLIPSE_DATA_DIR": str(data), "HOME": str(tmp_path)}
    listed = subprocess.run([str(EXPORTS), "jobs", "--workspace", "ws_a"], env=bare, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and "from-env" in listed.stdout, listed.stderr
    (data / "env.sh").write_text(f"export ECLIPSE_REDIS_URL='redis://127.0.0.1:{free_port()}/0'\n")
    stale = subprocess.run([str(EXPORTS), "status", "from-env"], env=bare, capture_output=True, text=True,
                           timeout=60)
    assert stale.returncode == 2 and f"taken from {data / 'env.sh'}" in stale.stderr
    assert "is it still running?" in stale.stderr


def _wait_for(port: int) -> None:
    from eclipse_exports.local.services import wait_for_port

    wait_for_port("127.0.0.1", port)


class _refusing_s3:
    """An S3 endpoint that refuses every request's key, as AWS does for an unknown access key."""

    def __enter__(self) -> str:
        class Refuse(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code>'
                        b"<Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>")
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _refuse

            def log_message(self, *args) -> None:
                pass

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Refuse)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_dead_letters_lists_refused_entries_newest_first_with_their_fields(env, redis_client, sqlite_engine):
    from eclipse_exports.queue.intake import take_requests

    redis_client.xadd("eclipse:exports:requests", {"payload": json.dumps({**PAYLOAD, "id": "dl-bad", "format": "xls"})})
    redis_client.xadd("eclipse:exports:requests", {"body": "no payload here"})
    take_requests(redis_client, sqlite_engine, JobStatusStore(redis_client), None)
    listed = cli(env, "dead-letters")
    assert listed.exit_code == 0
    newest, oldest = listed.output.split("\n")[0], listed.output.split("\n")[2]
    assert "job -  invalid_request: entry has no 'payload' field" in newest
    assert "job dl-bad  invalid_request:" in oldest and "format" in oldest
    rows = [json.loads(line) for line in cli(env, "dead-letters", "--json", "--limit", "1").output.splitlines()]
    assert len(rows) == 1 and rows[0]["original"] == {"body": "no payload here"} and rows[0]["source_entry_id"]
    redis_client.delete("eclipse:exports:dead-letter")
    empty = CliRunner().invoke(main, ["dead-letters"], env=env)
    assert empty.exit_code == 0 and "no dead letters" in empty.output


def test_dead_letters_names_an_unreachable_redis(env):
    down = cli({**env, "ECLIPSE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "dead-letters")
    assert down.exit_code != 0 and "Redis" in down.output


def test_report_url_links_a_weekly_report_and_names_a_missing_one(env, storage):
    from datetime import date

    key = storage.report_key("ws_a", date(2026, 11, 23))
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=b"<!doctype html><title>r</title>",
                              ContentType="text/html; charset=utf-8")
    link = cli(env, "report-url", "ws_a", "2026-11-26")  # a Thursday: the week of Monday 23 November
    assert link.exit_code == 0, link.output
    response = urllib.request.urlopen(link.stdout.strip())
    assert response.read() == b"<!doctype html><title>r</title>" and response.headers["Content-Type"].startswith(
        "text/html")
    missing = cli(env, "report-url", "ws_a", "2026-11-16")
    assert missing.exit_code == 2 and "no executive report of 'ws_a' for the week of 2026-11-16" in missing.stderr
    assert cli(env, "report-url", "ws_a", "last week").exit_code == 2
    this_week = datetime.now(UTC).date()
    early = cli(env, "report-url", "ws_a", this_week.isoformat())
    assert early.exit_code == 2 and "has not ended yet: its report is made after it ends" in early.stderr
    ancient = cli(env, "report-url", "ws_a", "2020-01-06")  # no backfill hint that report-backfill would refuse
    assert ancient.exit_code == 2 and "reports are made for the weeks from 2025-01-06 on" in ancient.stderr
    assert "report-backfill" not in ancient.stderr
    no_pdf = cli(env, "report-url", "ws_a", "2026-11-26", "--pdf")
    assert no_pdf.exit_code == 2 and "no executive report PDF of 'ws_a'" in no_pdf.stderr
    storage.client.put_object(Bucket=storage.bucket, Key=storage.report_key("ws_a", date(2026, 11, 23), "pdf"),
                              Body=b"%PDF-1.7 r", ContentType="application/pdf")
    pdf = cli(env, "report-url", "ws_a", "2026-11-23", "--pdf")
    assert pdf.exit_code == 0, pdf.output
    response = urllib.request.urlopen(pdf.stdout.strip())
    assert response.read() == b"%PDF-1.7 r" and response.headers["Content-Type"] == "application/pdf"


def test_status_shows_the_place_in_the_queue_then_a_counting_down_eta(env, redis_client):
    from eclipse_exports.cli.requests import _progress_line, describe_job

    job(redis_client, "waits", "queued")
    JobStatusStore(redis_client).queue_positions({"waits": 3})
    shown = cli(env, "status", "waits").stdout
    assert "queue      3rd in queue" in shown
    fields = JobStatusStore(redis_client).get("waits")
    assert _progress_line(fields).endswith("queued  3rd in queue")

    now = datetime.now(UTC)
    job(redis_client, "runs", "running", rowsWritten=250_000, rowCount=1_000_000, progress=25, etaSeconds=30,
        estimatedCompletionAt=iso_utc(now + timedelta(seconds=30)))
    fields = JobStatusStore(redis_client).get("runs")
    assert _progress_line(fields, now).endswith("250,000/1,000,000 rows  running  ETA 30 s")
    assert _progress_line(fields, now + timedelta(seconds=18)).endswith("ETA 12 s")  # counts down between writes
    assert any(line.startswith("eta        ETA ") for line in describe_job(fields))


def test_status_of_a_refused_raw_xadd_shows_what_the_request_said(env, redis_client, sqlite_engine):
    from eclipse_exports.queue.intake import take_requests

    redis_client.xadd("eclipse:exports:requests", {"payload": json.dumps({
        "id": "raw-videos", "workspaceId": "ws_a", "userId": "u_analyst", "resourceType": "videos", "format": "csv"})})
    redis_client.xadd("eclipse:exports:requests", {"payload": json.dumps({"id": "raw-odd", "workspaceId": 7})})
    take_requests(redis_client, sqlite_engine, JobStatusStore(redis_client), None)
    shown = cli(env, "status", "raw-videos")
    assert shown.exit_code == 1
    assert "request    videos as csv from ws_a, by u_analyst" in shown.stdout
    assert "error      invalid_request: " in shown.stdout and "?" not in shown.stdout.split("error")[0]
    odd = cli(env, "status", "raw-odd").stdout
    assert "request    not readable (see `eclipse-exports dead-letters`" in odd


def test_metrics_prints_the_counters_read_from_redis(env, redis_client):
    job(redis_client, "m-1", "completed", byteSize=10, rowCount=1, filePath="k")
    job(redis_client, "m-2", "failed", errorCode="export_failed", error="x")
    shown = cli(env, "metrics")
    assert shown.exit_code == 0
    assert 'eclipse_exports_jobs_total{format="csv",resource="alerts",status="completed"} 1.0' in shown.stdout
    assert 'eclipse_exports_jobs_total{format="csv",resource="alerts",status="failed"} 1.0' in shown.stdout
    assert "eclipse_exports_queue_lag_entries 0.0" in shown.stdout


def test_metrics_serve_answers_scrapes_until_stopped(env, redis_client):
    job(redis_client, "s-1", "completed", byteSize=10, rowCount=1, filePath="k")
    port = free_port()
    server = subprocess.Popen([str(EXPORTS), "metrics", "--serve", "--port", str(port)],
                              env={**env, "PATH": "/usr/bin"}, stderr=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/metrics" in server.stderr.readline()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'eclipse_exports_jobs_total{format="csv",resource="alerts",status="completed"} 1.0' in body
    finally:
        server.terminate()
    assert server.wait(timeout=20) == 0


def test_run_workers_list_shows_the_live_groups_and_exits_1_without_one(env, redis_client):
    from eclipse_exports.queue.run_workers import RunWorkerRegistry

    none = CliRunner().invoke(main, ["run-workers", "--list"], env=env)
    assert none.exit_code == 1 and "no live run worker group reports to redis://" in none.output
    registry = RunWorkerRegistry(redis_client)
    registry.beat_node("runs-a@host1", ["eclipse-runs"], 4, "host1", 4242)
    registry.beat_node("runs-b@host2", ["other"], 2, "host2", 77)
    listed = cli(env, "run-workers", "--list")
    assert listed.exit_code == 0
    header, *rows = listed.output.splitlines()
    assert header.split() == ["GROUP", "HOST", "PID", "CHILDREN", "QUEUES", "SEEN"]
    assert [row.split()[:5] for row in rows] == [["runs-a@host1", "host1", "4242", "4", "eclipse-runs"],
                                                ["runs-b@host2", "host2", "77", "2", "other"]]
    only = cli(env, "run-workers", "--list", "--queue", "other")
    assert [row.split()[0] for row in only.output.splitlines()[1:]] == ["runs-b@host2"]
