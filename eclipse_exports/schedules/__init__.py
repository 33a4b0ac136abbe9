"""Dagster schedules: the weekly executive reports, the retention clean-up, the daily audit archive and the pruning
of Dagster's history."""

from eclipse_exports.schedules.audit_archive import export_audit_archive_schedule
from eclipse_exports.schedules.cleanup import export_cleanup_schedule
from eclipse_exports.schedules.executive_report import executive_report_schedule
from eclipse_exports.schedules.history_cleanup import dagster_history_cleanup_schedule

__all__ = ["dagster_history_cleanup_schedule", "executive_report_schedule", "export_audit_archive_schedule",
           "export_cleanup_schedule"]
