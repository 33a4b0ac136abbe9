"""Dagster assets: the workspace-partitioned exports, the weekly executive report and the request queue's health."""

from eclipse_exports.assets.executive_report import executive_report
from eclipse_exports.assets.exports import EXPORT_ASSETS, ExportConfig, export_asset_for
from eclipse_exports.assets.queue_health import export_request_queue

__all__ = ["EXPORT_ASSETS", "ExportConfig", "executive_report", "export_asset_for", "export_request_queue"]
