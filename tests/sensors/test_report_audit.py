"""executive_report_audit_sensor: weekly reports' materializations become audit entries, once each."""

import json

import redis
from dagster import AssetMaterialization, DagsterInstance, SkipReason, build_sensor_context

from eclipse_exports.audit.trail import AuditTrail
from eclipse_exports.resources import RedisResource
from eclipse_exports.sensors import executive_report_audit_sensor


def materialization(workspace_id: str, status: str) -> AssetMaterialization:
    return AssetMaterialization(asset_key="executive_report", metadata={
        "workspace_id": workspace_id, "week": "2026-11-23", "byte_size": 1234,
        "mailed_to": 2 if status == "sent" else 0,
        "s3_uri": f"s3://b/workspaces/{workspace_id}/reports/2026-11-23-executive-report.html",
        "pdf_s3_uri": f"s3://b/workspaces/{workspace_id}/reports/2026-11-23-executive-report.pdf",
        "delivery_status": status, "delivery": f"{status} (test)"})


def test_each_report_is_audited_rendered_then_delivered_or_skipped_once(redis_url, redis_client):
    resources = {"redis": RedisResource(url=redis_url)}
    with DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(materialization("ws_a", "sent"))
        instance.report_runless_asset_event(materialization("ws_b", "already_delivered"))
        result = executive_report_audit_sensor(build_sensor_context(instance=instance, resources=resources))
        again = executive_report_audit_sensor(build_sensor_context(instance=instance, cursor=result.cursor,
                                                                   resources=resources))
    trail = AuditTrail(redis.Redis.from_url(redis_url))
    a, b = list(trail.entries("ws_a")), list(trail.entries("ws_b"))
    assert [e.event for e in a] == ["report_rendered", "report_delivered"]
    assert [e.event for e in b] == ["report_rendered", "report_skipped"]
    assert a[0].details["key"].endswith("ws_a/reports/2026-11-23-executive-report.html")
    assert a[0].details["pdfKey"].endswith(".pdf") and a[1].details["messages"] == 2
    assert b[1].details["status"] == "already_delivered" and all(e.actor == "system:executive_report" for e in a + b)
    assert isinstance(again, SkipReason)  # nothing new after the cursor
    assert len(list(trail.entries("ws_a"))) == 2
    json.dumps([e.details for e in a + b])  # details are JSON objects
