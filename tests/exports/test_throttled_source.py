"""The ETA of a 1M-row export on a throttled PostgreSQL source: the estimate made at 25 % lands within ±25 %
of the real finish, and a source whose connection dies on every attempt fails the job with the first cause.

The source, not the machine, is slowed: a TCP proxy in front of the test session's PostgreSQL passes what the
server sends at a fixed rate (``tests/throttled_proxy.py``), as a busy database or a slow link would. The
export runs for real (``run_export``: ADBC's COPY stream, the CSV writer, a multipart upload to the S3 server,
the read-back verification), with no history to lean on, so the estimate is this job's own pace plus the
read-back time of its format.
"""

import json
import time

import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import create_engine, text

from eclipse_exports.assets import EXPORT_ASSETS, ExportConfig
from eclipse_exports.assets.exports import RETRY_POLICY, first_cause
from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.models import ExportRequest
from eclipse_exports.observability.eta import PaceHistory
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, RedisResource, SourceDatabaseResource
from eclipse_exports.source.demo_data import create_schema
from tests.conftest import _fresh_database
from tests.throttled_proxy import ThrottledProxy

ROWS = 1_000_000
# Binary COPY sends ~110 bytes per row of this table: at 10 MB/s the stream takes ~11 s, slower than the
# machine would go, so the pace is the source's.
BYTES_PER_SECOND = 10_000_000


@pytest.fixture(scope="module")
def million(postgres_url):
    engine = create_engine(_fresh_database(postgres_url, "eta_million"))
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces VALUES ('ws_big', 'Big', 'active', now())"))
        conn.execute(text("INSERT INTO users VALUES ('u_big', 'big@example.com', 'Big')"))
        conn.execute(text("INSERT INTO workspace_members VALUES ('ws_big', 'u_big', 'owner')"))
        conn.execute(text("INSERT INTO brands VALUES ('br_big', 'ws_big', 'Big')"))
        conn.execute(text("""
            INSERT INTO alerts (id, workspace_id, brand_id, title, url, severity, status, detected_at, monitor_source)
            SELECT 'a' || n, 'ws_big', 'br_big', 'Listing ' || n, 'https://s.example/' || n, 'high', 'new',
                   timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second', 'scan'
            FROM generate_series(1, :rows) AS n"""), {"rows": ROWS})
        conn.execute(text("ANALYZE alerts"))
    yield engine
    engine.dispose()


def through(proxy: ThrottledProxy, engine):
    return create_engine(engine.url.set(host="127.0.0.1", port=proxy.port))


def request(job_id: str) -> ExportRequest:
    return ExportRequest.from_payload(json.dumps({"id": job_id, "workspaceId": "ws_big", "userId": "u_big",
                                                  "resourceType": "alerts", "format": "csv"}))


def test_the_estimate_at_a_quarter_lands_within_a_quarter_of_the_real_finish(million, storage, redis_client):
    proxy = ThrottledProxy("127.0.0.1", million.url.port, BYTES_PER_SECOND).start()
    seen: list[tuple[float, int, float | None]] = []
    store = JobStatusStore(redis_client)
    try:
        started = time.monotonic()
        result = run_export(request("eta-1m"), engine=through(proxy, million), storage=storage, status=store,
                            limits=ExportLimits(), run_id="run-eta",
                            on_progress=lambda rows, total, eta: seen.append((time.monotonic(), rows, eta)))
        finished = time.monotonic()
    finally:
        proxy.stop()
    assert result.row_count == ROWS and store.get("eta-1m")["status"] == "completed"
    at, rows, eta = next(point for point in seen if point[1] >= ROWS // 4)
    real = finished - at
    error = (eta - real) / real
    print(f"\nETA at {rows:,} rows ({rows / ROWS:.0%}, {at - started:.1f} s in): {eta:.1f} s; the job finished "
          f"{real:.1f} s later ({error:+.0%}); total {finished - started:.1f} s")
    assert rows <= ROWS * 0.3, "batches too coarse to judge the estimate at 25 %"
    assert abs(error) <= 0.25
    assert not {"etaSeconds", "estimatedCompletionAt"} & set(store.get("eta-1m"))
    [pace] = PaceHistory(redis_client).recent("alerts", "csv")  # the next such job starts from this one's pace
    assert pace.rows == ROWS and pace.stream_seconds > pace.tail_seconds > 0


def test_a_connection_killed_on_every_attempt_fails_the_job_with_its_first_cause(million, redis_url, redis_client,
                                                                                 s3_endpoint, bucket):
    proxy = ThrottledProxy("127.0.0.1", million.url.port).start()
    proxy.cut_after(3_000_000)  # every connection dies a few batches into the COPY stream
    resources = {"source_db": SourceDatabaseResource(url=through(proxy, million).url.render_as_string(False)),
                 "redis": RedisResource(url=redis_url), "limits": ExportLimitsResource(),
                 "storage": ExportStorageResource(bucket=bucket, prefix="", endpoint_url=s3_endpoint)}
    config = {"ops": {"alerts_export": {"config": ExportConfig.from_request(request("killed")).model_dump()}}}
    try:
        with DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("workspaces", ["ws_big"])
            result = materialize([EXPORT_ASSETS[0]], partition_key="ws_big", instance=instance, resources=resources,
                                 run_config=config, raise_on_error=False)
            logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    finally:
        proxy.stop()
    assert not result.success and proxy.cuts == 1 + RETRY_POLICY.max_retries
    final = JobStatusStore(redis_client).get("killed")
    assert (final["status"], final["errorCode"]) == ("failed", "export_failed")
    assert "Failed to rollback" not in final["error"] and "connection" in final["error"].lower(), final["error"]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert final["error"] in failure.event_specific_data.error.message  # the run's failure says the same
    assert any("while cleaning up after it" in line and "Failed to rollback" in line for line in logs)  # run log
    assert first_cause(["canceling statement due to statement timeout"], "OperationalError: gone") == \
        "canceling statement due to statement timeout (the first of 2 attempts; the last failed with: " \
        "OperationalError: gone)"
