"""Email messages: a finished export to its requester (``delivery: "email"``), and the
weekly executive report to a workspace's owners and admins.

Three steps, each usable on its own and none needing Dagster:

1. :func:`~eclipse_exports.delivery.recipients.recipient_for` looks up the requesting user's own address in the
   source database (``users``, only while the user is a member of the
   workspace). An address is never taken from the request.
2. :func:`build_export_email` renders the message: a plain-text body and an
   HTML alternative (Jinja2, autoescaped, from
   ``templates/export_ready_email.html``) with the download link, row count,
   format and expiry time.
3. :func:`~eclipse_exports.delivery.smtp.send_email` hands it to the SMTP server described by
   ``ECLIPSE_SMTP_URL`` (parsed by :func:`~eclipse_exports.delivery.smtp.parse_smtp_url`).

Typical use after :func:`eclipse_exports.exports.run.run_export`::

    target = parse_smtp_url(settings.smtp_url)
    with engine.connect() as conn:
        to = recipient_for(conn, request.workspace_id, request.user_id)
    if to is not None:
        message = build_export_email(
            to, request, download_url=result.download_url, expires_at=result.expires_at,
            row_count=result.row_count, file_name=result.key.rsplit("/", 1)[-1])
        send_email(target, message)

The weekly report uses :func:`~eclipse_exports.delivery.recipients.report_recipients` (owners and admins) and
:func:`build_report_email` (a plain-text summary with the HTML report
attached, with its PDF when there is one, or download links when :func:`attachment_fits` says no).
"""

import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import urlsplit

from eclipse_exports.models import ExportRequest, iso_utc, utc_now
from eclipse_exports.reports.rendering import html_template

DEFAULT_SENDER = "Eclipse Exports <exports@eclipse.invalid>"
"""``From`` of every export email unless the caller passes another ``sender``."""

EMAIL_TEMPLATE = "export_ready_email.html"

_ADDRESS_RE = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+$")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")

MAX_ATTACHMENT_ENCODED_BYTES = 10_000_000
"""Largest base64-encoded attachment sent (10 MB); a larger report goes as a download link."""


# --------------------------------------------------------------------------- message


def _checked_addresses(to: str, sender: str) -> tuple[str, str]:
    """``to`` stripped and the sender's bare address; ``ValueError`` unless each is one address."""
    to = to.strip()
    if not _ADDRESS_RE.match(to):
        raise ValueError("recipient is not a single email address")
    sender_address = parseaddr(sender)[1]
    if "\n" in sender or "\r" in sender or not _ADDRESS_RE.match(sender_address):
        raise ValueError("sender is not a single email address")
    return to, sender_address


def _filter_lines(request: ExportRequest) -> list[tuple[str, str]]:
    f = request.filters
    lines: list[tuple[str, str]] = []
    if f.severity:
        lines.append(("Severity", ", ".join(f.severity)))
    if f.status:
        lines.append(("Status", ", ".join(f.status)))
    if f.brand:
        lines.append(("Brand", ", ".join(f.brand)))
    if f.date_from is not None:
        lines.append(("From", iso_utc(f.date_from)))
    if f.date_to is not None:
        lines.append(("To (exclusive)", iso_utc(f.date_to)))
    return lines


def _format_label(request: ExportRequest) -> str:
    label = request.format.value.upper()
    if request.options.compression == "gzip":
        label += " (gzip)"
    if request.options.excel_compatible:
        label += ", Excel-compatible"
    return label


def build_export_email(
    to: str,
    request: ExportRequest,
    *,
    download_url: str,
    expires_at: datetime,
    row_count: int,
    file_name: str,
    sender: str = DEFAULT_SENDER,
) -> EmailMessage:
    """The "your export is ready" email for ``request``, addressed to ``to``.

    ``to`` is the address from :func:`recipient_for`, never one from the
    request. ``download_url``, ``expires_at`` (when the file, and so the
    link, stops being available; naive values are taken as UTC), ``row_count``
    and ``file_name`` come from the finished export
    (:class:`eclipse_exports.exports.run.ExportResult`; ``file_name`` is the last
    part of its ``key``).

    Returns a ``multipart/alternative`` message: ``text/plain`` first, then
    ``text/html`` rendered from ``templates/export_ready_email.html`` with
    autoescaping, so hostile text (brand filters, URLs) is escaped. Subject:
    ``Your Eclipse alerts export is ready (ws_acme)``. Raises ``ValueError``
    when ``to`` or ``sender`` is not a single address, ``download_url`` is not
    an absolute http(s) URL, or ``row_count`` is negative.
    """
    to, sender_address = _checked_addresses(to, sender)
    link = urlsplit(download_url)
    if link.scheme not in ("http", "https") or not link.netloc or _CONTROL_RE.search(download_url):
        raise ValueError("download_url must be an absolute http:// or https:// URL without spaces")
    if row_count < 0:
        raise ValueError(f"row_count must not be negative, got {row_count}")

    resource = request.resource_type.value
    context = {
        "resource": resource,
        "workspace_id": request.workspace_id,
        "job_id": request.id,
        "download_url": download_url,
        "expires_at": iso_utc(expires_at),
        "row_count": f"{row_count:,}",
        "rows_word": "row" if row_count == 1 else "rows",
        "format": _format_label(request),
        "file_name": file_name,
        "filters": _filter_lines(request),
    }
    subject = f"Your Eclipse {resource} export is ready ({request.workspace_id})"

    filters_text = "\n".join(f"  {label}: {value}" for label, value in context["filters"]) or "  none (all rows)"
    text = (
        f"Your {resource} export of workspace {request.workspace_id} is ready.\n"
        "\n"
        f"Download: {download_url}\n"
        "\n"
        f"File:     {file_name}\n"
        f"Format:   {context['format']}\n"
        f"Rows:     {context['row_count']}\n"
        f"Expires:  {context['expires_at']} (UTC)\n"
        f"Job id:   {request.id}\n"
        "Filters:\n"
        f"{filters_text}\n"
        "\n"
        "The link stops working when it expires; request the export again after that.\n"
        "You receive this email because you requested this export in Eclipse.\n"
    )
    html = html_template(EMAIL_TEMPLATE, keep_trailing_newline=True).render(subject=subject, **context)

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = make_msgid(idstring=request.id, domain=sender_address.rpartition("@")[2])
    message["X-Eclipse-Job-Id"] = request.id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def encoded_attachment_bytes(size: int) -> int:
    """Size on the wire of a ``size``-byte attachment: base64 (4 bytes per 3) in 76-character lines with CRLF."""
    encoded = 4 * -(-size // 3)
    return encoded + 2 * -(-encoded // 76)


def attachment_fits(size: int, limit: int = MAX_ATTACHMENT_ENCODED_BYTES) -> bool:
    """Whether a ``size``-byte file, once encoded, stays under ``limit`` bytes."""
    return encoded_attachment_bytes(size) < limit


def _header_text(text: str) -> str:
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def build_report_email(
    to: str,
    *,
    subject: str,
    text: str,
    attachment: tuple[str, bytes] | None = None,
    message_key: str,
    sender: str = DEFAULT_SENDER,
    pdf: tuple[str, bytes] | None = None,
) -> EmailMessage:
    """One report email to ``to``: the plain-text ``text`` and, when given, ``attachment`` (file name, HTML bytes)
    and ``pdf`` (file name, PDF bytes), in that order.

    ``subject`` is flattened to one line (control characters become spaces),
    so a workspace name cannot inject headers. ``message_key`` (e.g.
    ``ws_acme-2026-11-23``) makes the ``Message-ID``. Raises ``ValueError``
    when ``to`` or ``sender`` is not a single address.
    """
    to, sender_address = _checked_addresses(to, sender)
    message = EmailMessage()
    message["Subject"] = _header_text(subject)
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = make_msgid(idstring=_header_text(message_key).replace(" ", "-"),
                                       domain=sender_address.rpartition("@")[2])
    message.set_content(text)
    if attachment is not None:
        name, body = attachment
        message.add_attachment(body, maintype="text", subtype="html", filename=_header_text(name),
                               params={"charset": "utf-8"})
    if pdf is not None:
        name, body = pdf
        message.add_attachment(body, maintype="application", subtype="pdf", filename=_header_text(name))
    return message
