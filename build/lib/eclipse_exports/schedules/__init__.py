"""Dagster schedules: the weekly executive reports and the retention clean-up."""

from eclipse_exports.schedules.cleanup import export_cleanup_schedule
from eclipse_exports.schedules.executive_report import executive_report_schedule

__all__ = ["executive_report_schedule", "export_cleanup_schedule"]
