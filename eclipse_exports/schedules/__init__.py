"""Dagster schedules: the weekly executive reports, the retention clean-up and the daily audit archive."""

from eclipse_exports.schedules.audit_archive import export_audit_archive_schedule
from eclipse_exports.schedules.cleanup import export_cleanup_schedule
from eclipse_exports.schedules.executive_report import executive_report_schedule

__all__ = ["executive_report_schedule", "export_audit_archive_schedule", "export_cleanup_schedule"]
