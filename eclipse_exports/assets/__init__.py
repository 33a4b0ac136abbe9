"""Dagster assets: the workspace-partitioned exports and the weekly executive report."""

from eclipse_exports.assets.executive_report import executive_report
from eclipse_exports.assets.exports import EXPORT_ASSETS, ExportConfig, export_asset_for

__all__ = ["EXPORT_ASSETS", "ExportConfig", "executive_report", "export_asset_for"]
