"""Dagster assets: the workspace-partitioned exports, the weekly executive report, the request queue's health and
the daily archive of the export audit trail."""

from eclipse_exports.assets.audit_archive import export_audit_archive
from eclipse_exports.assets.executive_report import executive_report
from eclipse_exports.assets.exports import EXPORT_ASSETS, ExportConfig, export_asset_for
from eclipse_exports.assets.queue_health import export_request_queue

__all__ = ["EXPORT_ASSETS", "ExportConfig", "executive_report", "export_asset_for", "export_audit_archive",
           "export_request_queue"]
