"""Partitions: the ``workspaces`` dynamic partitions, and workspace × week for ``executive_report``.

``executive_report_partitions`` has the dimensions ``week`` and ``workspace``
(Dagster orders dimensions by name), so its keys read ``2026-11-23|ws_acme``
and its single-partition runs carry the tags ``dagster/partition/week`` and
``dagster/partition/workspace``. A week is Monday 00:00 UTC to the next
Monday, named by its Monday; the first week (Monday 6 January 2025) is well
before any demo data (``demo-data`` spans the 90 days before today or
``--as-of``). The latest week is the last one that has ended.

``export_audit_archive_partitions`` is workspace × day (UTC), dimensions ``day`` and ``workspace``, keys
``2026-11-23|ws_acme``; its days run up to and including today (``end_offset=1``), whose archive is partial.
"""

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from eclipse_exports.reports.weekly import FIRST_REPORT_WEEK

workspace_partitions = DynamicPartitionsDefinition(name="workspaces")

week_partitions = WeeklyPartitionsDefinition(start_date=FIRST_REPORT_WEEK, day_offset=1, timezone="UTC")
executive_report_partitions = MultiPartitionsDefinition({"week": week_partitions, "workspace": workspace_partitions})

FIRST_AUDIT_DAY = "2025-01-01"
audit_day_partitions = DailyPartitionsDefinition(start_date=FIRST_AUDIT_DAY, timezone="UTC", end_offset=1)
export_audit_archive_partitions = MultiPartitionsDefinition({"day": audit_day_partitions,
                                                             "workspace": workspace_partitions})
