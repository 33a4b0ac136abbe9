"""The queue's figures and the Prometheus metrics prove out against what the test did, on a real Redis.

Requests go through the real intake (``take_requests``, as the sensor calls it) and every status change
through ``JobStatusStore``; the figures are then read back by ``read_queue_health`` and scraped from the
metrics exposition. A known number of completed, failed and rejected jobs gives exactly those counts.
"""

import json
import time

import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from eclipse_exports.models import ErrorCode, ExportRequest, utc_now
from eclipse_exports.observability.health import (
    Severity,
    failure_verdict,
    lag_verdict,
    read_queue_health,
    write_run_counts,
)
from eclipse_exports.observability.metrics import exposition
from eclipse_exports.queue.intake import take_requests
from eclipse_exports.queue.keys import REQUEST_STREAM
from eclipse_exports.queue.status import JobStatusStore

ALLOWED = {"workspaceId": "ws_a", "userId": "u_analyst"}


def xadd(client, job_id, **fields) -> str:
    payload = {"id": job_id, **ALLOWED, "resourceType": "alerts", "format": "csv", **fields}
    return client.xadd(REQUEST_STREAM, {"payload": json.dumps(payload)}).decode()


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def request_of(store: JobStatusStore, job_id: str) -> ExportRequest:
    return ExportRequest.from_payload(store.get(job_id)["request"])


def test_a_known_burst_gives_exactly_its_counts_in_the_figures_and_the_metrics(redis_client, redis_url,
                                                                               sqlite_engine):
    store = JobStatusStore(redis_client)
    for n in range(6):
        xadd(redis_client, f"alerts-{n}")
    for n in range(2):
        xadd(redis_client, f"actions-{n}", resourceType="actions", format="jsonl")
    xadd(redis_client, "viewer-wants-actions", userId="u_viewer", resourceType="actions")  # forbidden
    xadd(redis_client, "videos-1", resourceType="videos", workspaceId="ws_b", userId="u_b")  # invalid, with an id
    xadd(redis_client, "alerts-0")  # duplicate
    redis_client.xadd(REQUEST_STREAM, {"nopayload": "x"})  # invalid, no id
    outcome = take_requests(redis_client, sqlite_engine, store, None)
    assert len(outcome.accepted) == 8 and outcome.rejected == 4

    # The refused raw XADD keeps what it said, as far as it could be read.
    videos = store.get("videos-1")
    assert (videos["status"], videos["errorCode"]) == ("rejected", "invalid_request")
    assert (videos["resourceType"], videos["workspaceId"], videos["userId"], videos["format"]) == \
        ("videos", "ws_b", "u_b", "csv")

    for n, job_id in enumerate([f"alerts-{n}" for n in range(6)] + ["actions-0", "actions-1"]):
        request = request_of(store, job_id)
        assert store.get(job_id)["streamEntryId"]
        store.queue_positions({job_id: n + 1})
        assert store.get(job_id)["queuePosition"] == str(n + 1)
        store.running(request, f"run-{n}", utc_now())
        store.progress(job_id, 10, 100, 4.4, utc_now())
        assert "queuePosition" not in store.get(job_id) and store.get(job_id)["etaSeconds"] == "4"
        if job_id in ("alerts-4", "actions-1"):
            store.failed(job_id, ErrorCode.EXPORT_FAILED, "boom", utc_now(), f"run-{n}")
            store.failed(job_id, ErrorCode.EXPORT_FAILED, "boom again", utc_now(), f"run-{n}")  # counted once
        else:
            store.completed(job_id, {"rowCount": 100, "byteSize": 2048 * (n + 1), "filePath": "k", "completedAt":
                                     utc_now()})
        final = store.get(job_id)
        assert not {"queuePosition", "etaSeconds", "estimatedCompletionAt"} & set(final)
    assert store.queue_positions({"alerts-0": 3}) == 0  # no place for a job that is not queued any more
    store.expired(["alerts-0"])

    health = read_queue_health(redis_client)
    assert health.stream_entries == 12 and health.lag_entries == 0 and health.oldest_unread_age_seconds == 0
    assert health.dead_letters_last_hour == 3  # the invalid two and the duplicate
    alerts, actions = health.by_resource["alerts"], health.by_resource["actions"]
    assert (alerts.completed, alerts.failed, actions.completed, actions.failed) == (5, 1, 1, 1)
    assert health.by_resource["unknown"].rejected == 1 and alerts.rejected == 0
    assert health.by_resource["actions"].rejected == 1  # the viewer's
    assert (health.overall.completed, health.overall.failed, health.overall.rejected) == (6, 2, 2)
    assert 0 <= health.overall.p50_seconds <= health.overall.p95_seconds < 60
    assert round(health.failure_share, 3) == 0.25
    assert health.runs_queued is None  # no queue-position sensor wrote yet

    write_run_counts(redis_client, "dagster-blue", queued=3, running=2)
    write_run_counts(redis_client, "dagster-green", queued=1, running=1)
    scraped = samples(exposition(redis.Redis.from_url(redis_url)))
    # A second collector on another connection (a restart, another instance) reads the same truth.
    assert samples(exposition(redis.Redis.from_url(redis_url))) == scraped
    jobs = {labels: value for (name, labels), value in scraped.items() if name == "eclipse_exports_jobs_total"}
    assert jobs == {
        (("format", "csv"), ("resource", "alerts"), ("status", "completed")): 5.0,
        (("format", "csv"), ("resource", "alerts"), ("status", "failed")): 1.0,
        (("format", "jsonl"), ("resource", "actions"), ("status", "completed")): 1.0,
        (("format", "jsonl"), ("resource", "actions"), ("status", "failed")): 1.0,
        (("format", "csv"), ("resource", "actions"), ("status", "rejected")): 1.0,
        (("format", "csv"), ("resource", "unknown"), ("status", "rejected")): 1.0,
        (("format", "csv"), ("resource", "alerts"), ("status", "expired")): 1.0,
    }
    rejections = {dict(labels)["code"]: value for (name, labels), value in scraped.items()
                  if name == "eclipse_exports_rejections_total"}
    assert rejections == {"forbidden": 1.0, "invalid_request": 2.0, "duplicate": 1.0}
    assert scraped[("eclipse_exports_queue_entries", ())] == 12
    assert scraped[("eclipse_exports_queue_lag_entries", ())] == 0
    assert scraped[("eclipse_exports_runs", (("state", "queued"),))] == 4
    assert scraped[("eclipse_exports_runs", (("state", "running"),))] == 3
    csv_alerts = (("format", "csv"), ("resource", "alerts"))
    assert scraped[("eclipse_exports_job_duration_seconds_count", csv_alerts)] == 6  # completed and failed
    assert scraped[("eclipse_exports_job_duration_seconds_bucket", (csv_alerts[0], ("le", "+Inf"), csv_alerts[1]))] == 6
    assert scraped[("eclipse_exports_file_bytes_count", csv_alerts)] == 5
    assert scraped[("eclipse_exports_file_bytes_sum", csv_alerts)] == 2048 * (1 + 2 + 3 + 4 + 6)
    assert scraped[("eclipse_exports_file_bytes_bucket", (csv_alerts[0], ("le", "16384.0"), csv_alerts[1]))] == 5
    assert scraped[("eclipse_exports_redis_up", ())] == 1


def test_unread_entries_their_age_and_the_verdicts(redis_client, sqlite_engine):
    store = JobStatusStore(redis_client)
    old_ms = int((time.time() - 700) * 1000)
    for n in range(3):
        redis_client.xadd(REQUEST_STREAM, {"payload": "{}"}, id=f"{old_ms + n}-0")
    health = read_queue_health(redis_client)
    assert health.lag_entries == 3 and 699 <= health.oldest_unread_age_seconds <= 720
    assert lag_verdict(health, 300).severity is Severity.ERROR  # over twice the limit
    assert lag_verdict(health, 600).severity is Severity.WARN
    assert lag_verdict(health, 800).severity is Severity.OK
    take_requests(redis_client, sqlite_engine, store, None)
    assert read_queue_health(redis_client).lag_entries == 0
    assert failure_verdict(health, 10).severity is Severity.OK  # nothing finished: no failures


def test_a_redis_that_cannot_be_read_reports_itself_down():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    assert samples(exposition(dead)) == {("eclipse_exports_redis_up", ()): 0.0}


def test_a_job_whose_run_left_the_queue_loses_its_place(redis_client):
    store = JobStatusStore(redis_client)
    store.queued(ExportRequest.from_payload(json.dumps({"id": "waiting", **ALLOWED, "resourceType": "alerts",
                                                        "format": "csv"})), utc_now(), "1-0")
    assert store.queue_positions({"waiting": 2}) == 1 and store.get("waiting")["queuePosition"] == "2"
    store.queue_positions({}, left=["waiting"])  # its run is starting, or failed and awaits a retry
    assert store.get("waiting")["status"] == "queued" and "queuePosition" not in store.get("waiting")
    store.queue_positions({"waiting": 1})
    store.requeued("waiting", "run-x")
    assert "queuePosition" not in store.get("waiting")
