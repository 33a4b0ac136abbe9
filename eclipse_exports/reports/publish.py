"""Render a workspace's report for a period and store it in S3: the one write path of both kinds of report.

The on-demand report (``resourceType: report``, key under ``exports/``) and
the scheduled weekly ``executive_report`` (key under ``reports/``) both call
:func:`write_report`; only the object key and the period differ. The weekly
report also stores the same page as a PDF beside the HTML (``pdf_key``;
``ECLIPSE_REPORT_PDF=false`` turns it off), rendered from the same HTML.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from eclipse_exports.exports.verification import ExpectedFile
from eclipse_exports.exports.writers import content_type
from eclipse_exports.models import ExportFormat
from eclipse_exports.reports.figures import ReportData, collect_report
from eclipse_exports.reports.page import render_report
from eclipse_exports.reports.pdf import PDF_CONTENT_TYPE, render_pdf
from eclipse_exports.storage.client import ExportStorage
from eclipse_exports.storage.multipart import StoredBytesCallback


@dataclass(frozen=True)
class StoredPdf:
    """The report's PDF stored at ``key``: its bytes (for attaching), size in bytes and page count."""

    key: str
    body: bytes
    byte_size: int
    pages: int

    @property
    def file_name(self) -> str:
        """The object's last path segment, e.g. ``2026-11-23-executive-report.pdf``."""
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WrittenReport:
    """A report stored at ``key``: its size in bytes and hex SHA-256, the figures it shows, and its HTML
    (for attaching); ``pdf`` when a PDF was stored too."""

    key: str
    byte_size: int
    data: ReportData
    body: bytes
    sha256: str
    pdf: StoredPdf | None = None

    def expected_file(self) -> ExpectedFile:
        """What the stored object must be (:func:`eclipse_exports.exports.verification.verify_export_file`):
        these bytes, as HTML, listing ``data.row_count`` rows."""
        return ExpectedFile(self.key, ExportFormat.HTML, False, self.byte_size, self.sha256, self.data.row_count,
                            content_type=content_type(ExportFormat.HTML))

    @property
    def file_name(self) -> str:
        """The object's last path segment, e.g. ``2026-11-23-executive-report.html``."""
        return self.key.rsplit("/", 1)[-1]


def write_report(engine: Engine, storage: ExportStorage, key: str, workspace_id: str, period_start: datetime,
                 period_end: datetime, generated_at: datetime, metadata: dict[str, str] | None = None,
                 on_stored: StoredBytesCallback | None = None, pdf_key: str | None = None) -> WrittenReport:
    """Collect ``workspace_id``'s figures for ``[period_start, period_end)``, render them, upload to ``key``.

    An object already at ``key`` is replaced. ``metadata`` and ``on_stored``
    go to the upload (an on-demand report is an export file: job metadata,
    usage counting). With ``pdf_key`` the same page is also stored there as a
    PDF (after the HTML). Raises ``LookupError`` for an unknown workspace
    (nothing is written), and the database's, Chromium's (Playwright's) or S3's own errors
    (a failed upload leaves no object behind).
    """
    with engine.connect() as conn:
        data = collect_report(conn, workspace_id, period_start, period_end, generated_at)
    html = render_report(data)
    body = html.encode("utf-8")
    # Inline: a browser opening the link shows the report rather than downloading it.
    with storage.open_upload(key, content_type(ExportFormat.HTML), key.rsplit("/", 1)[-1], inline=True,
                             metadata=metadata, on_stored=on_stored) as upload:
        upload.write(body)
    stored_pdf = _store_pdf(storage, pdf_key, html) if pdf_key else None
    return WrittenReport(key, upload.bytes_written, data, body, upload.sha256, stored_pdf)


def _store_pdf(storage: ExportStorage, key: str, html: str) -> StoredPdf:
    pdf, pages = render_pdf(html)
    name = key.rsplit("/", 1)[-1]
    with storage.open_upload(key, PDF_CONTENT_TYPE, name, inline=True) as upload:
        upload.write(pdf)
    return StoredPdf(key, pdf, upload.bytes_written, pages)
