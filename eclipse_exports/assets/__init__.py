"""Dagster assets: the three workspace-partitioned export assets."""

from eclipse_exports.assets.exports import EXPORT_ASSETS, ExportConfig, export_asset_for

__all__ = ["EXPORT_ASSETS", "ExportConfig", "export_asset_for"]
