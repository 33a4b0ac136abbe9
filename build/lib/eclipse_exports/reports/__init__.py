"""Executive reports of one workspace: figures, the HTML page, storage, and the weekly delivery.

- :mod:`~eclipse_exports.reports.figures`: what each figure means and the SQL that counts it;
- :mod:`~eclipse_exports.reports.charts` and :mod:`~eclipse_exports.reports.page`: the self-contained page;
- :mod:`~eclipse_exports.reports.publish`: render and store (both the on-demand and the scheduled report);
- :mod:`~eclipse_exports.reports.weekly`: the scheduled weekly report and its email to owners and admins.
"""

from eclipse_exports.reports.figures import LIST_LIMIT, PeriodFigures, ReportData, collect_report
from eclipse_exports.reports.page import render_report
from eclipse_exports.reports.publish import WrittenReport, write_report

__all__ = ["LIST_LIMIT", "PeriodFigures", "ReportData", "WrittenReport", "collect_report", "render_report",
           "write_report"]
