"""The scheduled weekly executive report of one workspace: render it for a week, store it, mail it.

A week runs from Monday 00:00 UTC to the next Monday (:class:`ReportWeek`,
named by its Monday ``YYYY-MM-DD``, which is also the ``week`` partition key
of ``executive_report``). :func:`publish_weekly_report` writes the page to
``workspaces/{workspaceId}/reports/{YYYY-MM-DD}-executive-report.html`` and,
unless ``ECLIPSE_REPORT_PDF`` is off, the same report as ``….pdf`` beside it;
:func:`deliver_weekly_report` then mails it to the workspace's owners and
admins, one message each: a plain-text summary (the brief's sentences and the
headline figures) with the HTML report and its PDF attached, or, when the
encoded attachments would reach 10 MB, presigned download links that expire
before the report does (at most 7 days, SigV4's limit, and never past
``ECLIPSE_REPORT_RETENTION_DAYS``).

Delivery never raises for an SMTP problem: it returns a
:class:`DeliveryOutcome` saying what happened, so the caller keeps the stored
report and shows the failure.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import Engine

from eclipse_exports.config import Settings
from eclipse_exports.delivery.email import (
    DEFAULT_SENDER,
    MAX_ATTACHMENT_ENCODED_BYTES,
    attachment_fits,
    build_report_email,
)
from eclipse_exports.delivery.recipients import report_recipients
from eclipse_exports.delivery.smtp import DeliveryFailed, SmtpTarget, send_email
from eclipse_exports.reports.brief import BriefThresholds, build_brief
from eclipse_exports.reports.page import headline_cards
from eclipse_exports.reports.publish import WrittenReport, write_report
from eclipse_exports.reports.wording import moment_utc, period_label, period_noun, previous_noun
from eclipse_exports.source.access import workspace_status
from eclipse_exports.storage.client import ExportStorage

PRESIGN_MAX_SECONDS = 7 * 86_400
"""The longest lifetime of a SigV4 presigned URL."""

FIRST_REPORT_WEEK = "2025-01-06"
"""The first report week (Monday 6 January 2025), well before any demo data; its partitions start here."""


@dataclass(frozen=True)
class ReportWeek:
    """One report week: ``start`` is a Monday 00:00 UTC, ``end`` the next Monday (exclusive)."""

    start: datetime

    def __post_init__(self) -> None:
        start = self.start.astimezone(UTC)
        if start.weekday() != 0 or start.time() != time(0):
            raise ValueError(f"{start:%Y-%m-%d %H:%M} UTC is a {start:%A}; a report week starts on a Monday at "
                             "00:00 UTC")

    @classmethod
    def from_key(cls, key: str) -> "ReportWeek":
        """The week named ``YYYY-MM-DD`` (its Monday). Raises ``ValueError`` for anything else."""
        return cls(datetime.combine(date.fromisoformat(key), time(0), tzinfo=UTC))

    @classmethod
    def last_complete(cls, moment: datetime) -> "ReportWeek":
        """The latest week that ended at or before ``moment`` (on Monday 06:00, the week that ended at 00:00)."""
        day = moment.astimezone(UTC).date()
        this_monday = datetime.combine(day - timedelta(days=day.weekday()), time(0), tzinfo=UTC)
        return cls(this_monday - timedelta(days=7))

    @property
    def end(self) -> datetime:
        """The next Monday 00:00 UTC."""
        return self.start + timedelta(days=7)

    @property
    def key(self) -> str:
        """``YYYY-MM-DD`` of the Monday."""
        return self.start.astimezone(UTC).date().isoformat()


def publish_weekly_report(engine: Engine, storage: ExportStorage, workspace_id: str, week: ReportWeek,
                          generated_at: datetime, pdf: bool = True) -> WrittenReport:
    """Render ``workspace_id``'s report for ``week`` and store it at the interface's report key (replacing it),
    with its PDF beside it when ``pdf``.

    Raises ``LookupError`` for an unknown workspace; database, Chromium (Playwright) and S3 errors propagate.
    """
    monday = week.start.date()
    pdf_key = storage.report_key(workspace_id, monday, "pdf") if pdf else None
    return write_report(engine, storage, storage.report_key(workspace_id, monday), workspace_id, week.start,
                        week.end, generated_at, pdf_key=pdf_key)


class DeliveryStatus(StrEnum):
    """What became of a report's email."""

    SENT = "sent"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"
    NO_RECIPIENTS = "no_recipients"
    WORKSPACE_INACTIVE = "workspace_inactive"
    ALREADY_DELIVERED = "already_delivered"
    NOT_ASKED = "not_asked"


@dataclass(frozen=True)
class DeliveryOutcome:
    """How the report went out: ``recipients`` owners and admins, ``sent`` messages accepted by the server.

    ``method`` is ``attachment`` or ``link`` (``None`` when nothing was sent);
    ``error`` the redacted cause of a failure (never an address).
    """

    status: DeliveryStatus
    recipients: int = 0
    sent: int = 0
    method: str | None = None
    link_expires_at: datetime | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Every owner and admin got the report, or nobody was to get it by design (no SMTP, inactive, already
        mailed, not asked)."""
        return self.status in (DeliveryStatus.SENT, DeliveryStatus.NOT_CONFIGURED, DeliveryStatus.WORKSPACE_INACTIVE,
                               DeliveryStatus.ALREADY_DELIVERED, DeliveryStatus.NOT_ASKED)

    @property
    def description(self) -> str:
        """One sentence for the run log and the asset check."""
        how = f" ({'report attached' if self.method == 'attachment' else 'download link'})" if self.method else ""
        return {
            DeliveryStatus.SENT: f"mailed to {self.sent} owner(s) and admin(s){how}",
            DeliveryStatus.FAILED: f"{self.recipients - self.sent} of {self.recipients} message(s) failed{how}: "
                                   f"{self.error}",
            DeliveryStatus.NOT_CONFIGURED: "not mailed: ECLIPSE_SMTP_URL is unset (the report is stored)",
            DeliveryStatus.NO_RECIPIENTS: "not mailed: the workspace has no owner or admin with an email address",
            DeliveryStatus.WORKSPACE_INACTIVE: "not mailed: the workspace is not active (the report is stored)",
            DeliveryStatus.ALREADY_DELIVERED: "not mailed again: this week's report was already mailed",
            DeliveryStatus.NOT_ASKED: "not mailed: a backfill or re-execution mails only when asked "
                                      "(run tag eclipse/email=true, or report-backfill --email)",
        }[self.status]


@dataclass(frozen=True)
class MailSettings:
    """Where and how reports are mailed; ``smtp`` ``None`` means email is not configured."""

    smtp: SmtpTarget | None
    retention_days: int = 90
    max_attachment_bytes: int = MAX_ATTACHMENT_ENCODED_BYTES
    sender: str = DEFAULT_SENDER

    def link_lifetime(self) -> timedelta:
        """A download link's lifetime: 7 days (SigV4's maximum), shorter if the report is kept less long."""
        return min(timedelta(seconds=PRESIGN_MAX_SECONDS), timedelta(days=self.retention_days))


def summary_text(report: WrittenReport, link: str | None = None, link_expires_at: datetime | None = None,
                 pdf_link: str | None = None) -> str:
    """The plain-text body: the period, the brief, each headline figure with its change, how to open the report."""
    data = report.data
    lines = [f"Executive report for {data.workspace_name} ({data.workspace_id})",
             f"Week of {period_label(data.period_start, data.period_end)}, compared with {previous_noun(data)}.", "",
             "In brief:"]
    brief = build_brief(data, BriefThresholds.from_settings(Settings.from_env()), period_noun(data),
                        previous_noun(data))
    lines += [f"- {sentence.text}" for sentence in brief] + [""]
    cards = headline_cards(data)
    width = max(len(card.title) for card in cards) + 2
    for card in cards:
        lines.append(f"{card.title + ':':<{width}}{card.shown:>14}   {card.change.text}")
    lines.append("")
    if link is None:
        pdf = f", and as a PDF to print or forward ({report.pdf.file_name})" if report.pdf else ""
        lines.append(f"The full report with charts is attached ({report.file_name}, open it in a web browser){pdf}.")
    else:
        lines += ["The full report is too large to attach. Download it here (the link works until "
                  f"{moment_utc(link_expires_at)}):", link] + (["As a PDF:", pdf_link] if pdf_link else [])
    lines += ["", "Definitions of every figure are at the end of the report. All times are UTC.",
              f"You receive this email as an owner or admin of the Eclipse workspace {data.workspace_id}."]
    return "\n".join(lines) + "\n"


def deliver_weekly_report(engine: Engine, storage: ExportStorage, report: WrittenReport, mail: MailSettings,
                          now: datetime) -> DeliveryOutcome:
    """Mail ``report`` to its workspace's owners and admins, one message each; never raises for SMTP trouble.

    Reads the workspace's status and members from the source database. Not
    mailed (and not an error): SMTP not configured, workspace not ``active``.
    Each recipient is tried even when an earlier one failed; the outcome says
    how many were sent and the first cause.
    """
    data = report.data
    if mail.smtp is None:
        return DeliveryOutcome(DeliveryStatus.NOT_CONFIGURED)
    with engine.connect() as conn:
        status = workspace_status(conn, data.workspace_id)
        recipients = report_recipients(conn, data.workspace_id)
    if status != "active":
        return DeliveryOutcome(DeliveryStatus.WORKSPACE_INACTIVE, len(recipients))
    if not recipients:
        return DeliveryOutcome(DeliveryStatus.NO_RECIPIENTS)
    link = expires_at = pdf_link = None
    pdf = (report.pdf.file_name, report.pdf.body) if report.pdf else None
    if attachment_fits(report.byte_size + (report.pdf.byte_size if report.pdf else 0), mail.max_attachment_bytes):
        method, attachment = "attachment", (report.file_name, report.body)
    else:
        lifetime = mail.link_lifetime()
        method, attachment, pdf = "link", None, None
        link, expires_at = storage.presign(report.key, int(lifetime.total_seconds()),
                                           workspace_id=data.workspace_id), now + lifetime
        pdf_link = storage.presign(report.pdf.key, int(lifetime.total_seconds()),
                                   workspace_id=data.workspace_id) if report.pdf else None
    text = summary_text(report, link, expires_at, pdf_link)
    subject = f"Eclipse weekly report: {data.workspace_name}, week of {data.period_start:%-d %b %Y}"
    sent, errors = 0, []
    for to in recipients:
        try:
            send_email(mail.smtp, build_report_email(
                to, subject=subject, text=text, attachment=attachment, pdf=pdf, sender=mail.sender,
                message_key=f"{data.workspace_id}-{data.period_start:%Y-%m-%d}"))
            sent += 1
        except DeliveryFailed as exc:
            errors.append(str(exc))
        except ValueError:
            errors.append("an owner's or admin's address in the users table is not a single email address")
    if errors:
        return DeliveryOutcome(DeliveryStatus.FAILED, len(recipients), sent, method, expires_at, errors[0])
    return DeliveryOutcome(DeliveryStatus.SENT, len(recipients), sent, method, expires_at)
