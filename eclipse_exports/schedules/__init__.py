"""Dagster schedules: the weekly executive reports."""

from eclipse_exports.schedules.executive_report import executive_report_schedule

__all__ = ["executive_report_schedule"]
