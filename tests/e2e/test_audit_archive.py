"""Issue 19 as a new user tries it from the README, on a live `dagster dev` (real Redis, PostgreSQL, S3 via moto):
an owner exports audit_logs as CSV and Parquet and reads them back, an analyst is refused, the job's audit trail
is printed, archived by `audit archive` through the webserver, verified, exported as export_audit, and a hand-
changed archive fails `audit verify` naming its day."""

import gzip
import json
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from eclipse_exports.cli import main
from eclipse_exports.local.services import free_port
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from tests.conftest import _fresh_database
from tests.live_dagster import DagsterDev, wait_until
from tests.readback import read_rows

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def product(tmp_path_factory, postgres_url, redis_url, s3_endpoint):
    home = tmp_path_factory.mktemp("audit_dagster")
    database_url = _fresh_database(postgres_url, "audit_e2e")
    load_demo_data(create_engine(database_url), "tiny", seed=5)
    bucket = "audit-e2e"
    make_s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    env = {"ECLIPSE_DATABASE_URL": database_url, "ECLIPSE_REDIS_URL": redis_url, "ECLIPSE_S3_BUCKET": bucket,
           "AWS_ENDPOINT_URL": s3_endpoint, "ECLIPSE_DATA_DIR": str(home / "data"), "ECLIPSE_SENSOR_LONG_POLL_MS": "0"}
    import os

    dev = DagsterDev(home / "dagster_home", {**os.environ, **env}, free_port()).start()
    yield {"env": {**env, "ECLIPSE_DAGSTER_URL": dev.url}, "database_url": database_url,
           "storage": ExportStorage(make_s3_client(s3_endpoint), bucket)}
    dev.stop()


def cli(product, *args):
    return CliRunner().invoke(main, list(args), env=product["env"], catch_exceptions=False)


def finished(product, job_id: str, timeout: float = 240) -> dict:
    def status():
        shown = json.loads(cli(product, "status", job_id, "--json").stdout or "{}")
        return shown if shown.get("status") in ("completed", "failed", "rejected") else None
    return wait_until(status, timeout, f"job {job_id} to finish")


def test_audit_logs_the_trail_its_archive_and_a_tampered_day(product):
    with create_engine(product["database_url"]).connect() as conn:
        in_source = conn.execute(text("SELECT count(*) FROM audit_logs WHERE workspace_id = 'ws_acme'")).scalar()
    jobs = {}
    for fmt in ("csv", "parquet"):
        sent = cli(product, "request", "--workspace", "ws_acme", "--user", "usr_acme_owner", "--resource",
                   "audit_logs", "--format", fmt)
        assert sent.exit_code == 0, sent.output
        jobs[fmt] = sent.stdout.strip()
    refused = cli(product, "request", "--workspace", "ws_acme", "--user", "usr_acme_analyst", "--resource",
                  "audit_logs", "--format", "csv").stdout.strip()
    for fmt, job_id in jobs.items():
        assert finished(product, job_id)["status"] == "completed"
        link = cli(product, "url", job_id).stdout.strip()
        rows = read_rows(urllib.request.urlopen(link).read(), fmt)
        assert len(rows) == in_source and rows[0]["id"].startswith("aud_acme_")
        head = product["storage"].head(json.loads(cli(product, "status", job_id, "--json").stdout)["filePath"])
        assert head["ServerSideEncryption"] == "AES256"
    rejected = finished(product, refused)
    assert rejected["status"] == "rejected" and rejected["errorCode"] == "forbidden"

    trail = cli(product, "audit", "--workspace", "ws_acme", "--job", jobs["csv"], "--json")
    events = [json.loads(line)["event"] for line in trail.stdout.splitlines()]
    assert events == ["requested", "run_started", "completed", "link_issued", "link_issued"], events

    today = datetime.now(UTC).date().isoformat()
    archived = cli(product, "audit", "archive", "--workspace", "ws_acme", "--day", today)
    assert archived.exit_code == 0, archived.output
    assert f"audit/{today}.jsonl.gz: partial" in archived.stdout
    assert cli(product, "audit", "verify", "--workspace", "ws_acme").exit_code == 0

    own = cli(product, "request", "--workspace", "ws_acme", "--user", "usr_acme_owner", "--resource",
              "export_audit", "--format", "jsonl").stdout.strip()
    assert finished(product, own)["status"] == "completed"
    rows = read_rows(urllib.request.urlopen(cli(product, "url", own).stdout.strip()).read(), "jsonl")
    done = [r for r in rows if r["job_id"] == jobs["parquet"] and r["event"] == "completed"]
    assert len(done) == 1 and len(done[0]["details"]["sha256"]) == 64

    storage = product["storage"]
    key = storage.audit_key("ws_acme", datetime.now(UTC).date())
    body = gzip.decompress(storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read())
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=gzip.compress(body.replace(b"csv", b"CSV", 1)),
                              **storage.sse.put_args())
    time.sleep(0.1)
    bad = cli(product, "audit", "verify", "--workspace", "ws_acme")
    assert bad.exit_code == 1 and f"audit archive of {today} was modified" in bad.stderr
