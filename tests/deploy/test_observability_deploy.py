"""The deployment's Prometheus and Grafana files chart and alert on metrics the metrics server really exposes."""

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from eclipse_exports.models import ErrorCode, ExportRequest, utc_now
from eclipse_exports.observability.health import write_run_counts
from eclipse_exports.observability.metrics import exposition
from eclipse_exports.queue.status import JobStatusStore

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\beclipse_exports_[a-z_]+")


def exposed_names(redis_client) -> set[str]:
    store = JobStatusStore(redis_client)
    for job_id, final in (("ok", "completed"), ("bad", "failed")):
        request = ExportRequest.from_payload(json.dumps({"id": job_id, "workspaceId": "ws_a", "userId": "u",
                                                         "resourceType": "alerts", "format": "csv"}))
        store.queued(request, utc_now(), "1-0")
        if final == "completed":
            store.completed(job_id, {"byteSize": 10, "rowCount": 1, "filePath": "k"})
        else:
            store.failed(job_id, ErrorCode.EXPORT_FAILED, "x", utc_now())
    redis_client.hincrby("eclipse:exports:metrics:rejections", "forbidden", 1)
    write_run_counts(redis_client, "dagster-x", 1, 1)
    return {sample.name for family in text_string_to_metric_families(exposition(redis_client).decode())
            for sample in family.samples}


def test_the_dashboard_and_the_alerts_use_only_exposed_metrics(redis_client):
    exposed = exposed_names(redis_client)
    dashboard = json.loads((DEPLOY / "grafana" / "eclipse-exports-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = (DEPLOY / "prometheus" / "eclipse-exports-alerts.yml").read_text()
    used = {name for text in [*expressions, alerts] for name in METRIC.findall(text)}
    assert used and used <= exposed, sorted(used - exposed)
    assert {"eclipse_exports_jobs_total", "eclipse_exports_rejections_total", "eclipse_exports_queue_entries",
            "eclipse_exports_queue_lag_entries", "eclipse_exports_oldest_unread_age_seconds", "eclipse_exports_runs",
            "eclipse_exports_job_duration_seconds_bucket", "eclipse_exports_file_bytes_bucket"} <= exposed
    unit = (DEPLOY / "systemd" / "eclipse-exports-metrics.service").read_text()
    assert "eclipse-exports metrics --serve" in unit
    assert "eclipse-exports-metrics.service" in (DEPLOY / "systemd" / "eclipse-exports.target").read_text()
    assert "9464" in (DEPLOY / "prometheus" / "prometheus.yml").read_text()
