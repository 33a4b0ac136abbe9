"""Email delivery: a finished export to its requester (CONTRACT section 2, ``delivery: "email"``), and the
weekly executive report to a workspace's owners and admins.

Three steps, each usable on its own and none needing Dagster:

1. :func:`recipient_for` looks up the requesting user's own address in the
   source database (``users``, only while the user is a member of the
   workspace). An address is never taken from the request.
2. :func:`build_export_email` renders the message: a plain-text body and an
   HTML alternative (Jinja2, autoescaped, from
   ``templates/export_ready_email.html``) with the download link, row count,
   format and expiry time.
3. :func:`send_email` hands it to the SMTP server described by
   ``ECLIPSE_SMTP_URL`` (parsed by :func:`parse_smtp_url`).

Typical use after :func:`eclipse_exports.exports.run.run_export`::

    target = parse_smtp_url(settings.smtp_url)
    with engine.connect() as conn:
        to = recipient_for(conn, request.workspace_id, request.user_id)
    if to is not None:
        message = build_export_email(
            to, request, download_url=result.download_url, expires_at=result.expires_at,
            row_count=result.row_count, file_name=result.key.rsplit("/", 1)[-1])
        send_email(target, message)

The weekly report uses :func:`report_recipients` (owners and admins) and
:func:`build_report_email` (a plain-text summary with the HTML report
attached, or a download link when :func:`attachment_fits` says no).

Passwords from the SMTP URL never appear in a ``repr``, ``str`` or error message.
"""

import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy import Connection, select

from eclipse_exports.config import redact
from eclipse_exports.models import ExportRequest, iso_utc, utc_now
from eclipse_exports.reports.rendering import html_template
from eclipse_exports.source.schema import users, workspace_members

DEFAULT_SENDER = "Eclipse Exports <exports@eclipse.invalid>"
"""``From`` of every export email unless the caller passes another ``sender``."""

EMAIL_TEMPLATE = "export_ready_email.html"

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_ADDRESS_RE = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+$")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")

REPORT_ROLES = ("owner", "admin")
MAX_ATTACHMENT_ENCODED_BYTES = 10_000_000
"""Largest base64-encoded attachment sent (10 MB); a larger report goes as a download link."""


class DeliveryFailed(Exception):
    """The SMTP server could not be reached or did not accept the message.

    ``str(exc)`` is a readable, redacted cause (server host and port, the
    error); it never contains the SMTP password. Retrying may help.
    """


# --------------------------------------------------------------------------- recipient


def recipient_for(conn: Connection, workspace_id: str, user_id: str) -> str | None:
    """The email address of ``user_id`` if the user is a member of ``workspace_id``, else ``None``.

    Reads ``users.email`` joined to ``workspace_members`` in the source
    database; both ids are bound parameters. Returns ``None`` for an unknown
    user, a user who is not (or no longer) a member, and an empty address.
    The workspace's status and the member's role are not checked here (that
    is :func:`eclipse_exports.source.access.check_access`'s job).
    """
    query = (
        select(users.c.email)
        .select_from(users.join(workspace_members, workspace_members.c.user_id == users.c.id))
        .where(workspace_members.c.workspace_id == workspace_id, users.c.id == user_id)
    )
    email = conn.execute(query).scalar_one_or_none()
    if email is None or not email.strip():
        return None
    return email.strip()


def report_recipients(conn: Connection, workspace_id: str) -> list[str]:
    """Addresses of the workspace's owners and admins (``workspace_members`` joined to ``users``), sorted, unique.

    Members without an address are left out; the workspace id is a bound parameter.
    """
    query = (
        select(users.c.email)
        .select_from(users.join(workspace_members, workspace_members.c.user_id == users.c.id))
        .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.role.in_(REPORT_ROLES))
    )
    return sorted({email.strip() for email in conn.execute(query).scalars() if email and email.strip()})


# --------------------------------------------------------------------------- SMTP target


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send mail, parsed from ``ECLIPSE_SMTP_URL`` by :func:`parse_smtp_url`.

    ``use_tls`` means implicit TLS from the first byte (``smtps://``);
    ``starttls`` means a plain connection upgraded with ``STARTTLS``
    (``smtp://…?starttls=true``). ``username``/``password`` are both set
    (login) or both ``None``. The password is left out of ``repr`` and ``str``.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False
    starttls: bool = False

    def __str__(self) -> str:
        """The target as a URL with the password masked, e.g. ``smtps://mailer:***@mail.example:465``."""
        scheme = "smtps" if self.use_tls else "smtp"
        userinfo = f"{self.username}:***@" if self.username is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "?starttls=true" if self.starttls else ""
        return f"{scheme}://{userinfo}{host}:{self.port}{query}"

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse an SMTP URL into an :class:`SmtpTarget`.

    Accepted shapes::

        smtp://host:port                      plain SMTP (port defaults to 25)
        smtp://user:pass@host:port            plain SMTP with login
        smtp://user:pass@host:587?starttls=true   upgraded with STARTTLS
        smtps://user:pass@host:465            implicit TLS (port defaults to 465)

    User name and password are percent-decoded (write ``@`` as ``%40``).
    Raises ``ValueError`` with a readable reason for anything else (other
    schemes, no host, a bad port, a path, unknown query parameters, a user
    without a password). The message never repeats the URL's credentials.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("SMTP URL is empty; expected smtp://host:port or smtps://host:port")
    url = url.strip()
    if _CONTROL_RE.search(url):
        raise ValueError("SMTP URL contains whitespace or control characters")
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError("SMTP URL must start with smtp:// or smtps:// (e.g. smtp://mail.example:25)")
    try:  # urlsplit's own messages may quote the whole netloc, password included: never pass them on
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError("SMTP URL is malformed (expected smtp://user:password@host:port)") from None
    if not host:
        raise ValueError("SMTP URL has no host (expected smtp://host:port)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"SMTP URL for host {host!r} has a port that is not a number from 1 to 65535") from None
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError(f"SMTP URL for host {host!r} has a port that is not a number from 1 to 65535")
    if parts.path not in ("", "/"):
        raise ValueError(f"SMTP URL for host {host!r} must not have a path")
    if parts.fragment:
        raise ValueError(f"SMTP URL for host {host!r} must not have a fragment")

    starttls = False
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "starttls":
            raise ValueError(f"SMTP URL for host {host!r} has unknown parameter {name!r}; only 'starttls' is known")
        if value.lower() in _TRUE:
            starttls = True
        elif value.lower() in _FALSE:
            starttls = False
        else:
            raise ValueError(f"SMTP URL for host {host!r}: 'starttls' must be true or false")
    if starttls and scheme == "smtps":
        raise ValueError(f"SMTP URL for host {host!r}: smtps:// is already TLS; 'starttls' applies to smtp:// only")

    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is None and password:
        raise ValueError(f"SMTP URL for host {host!r} has a password but no user name")
    if username is not None and not password:
        raise ValueError(f"SMTP URL for host {host!r} has a user name but no password")
    return SmtpTarget(
        host=host,
        port=port,
        username=username,
        password=password if username is not None else None,
        use_tls=scheme == "smtps",
        starttls=starttls,
    )


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
) -> EmailMessage:
    """One report email to ``to``: the plain-text ``text`` and, when given, ``attachment`` (file name, HTML bytes).

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
    return message


# --------------------------------------------------------------------------- sending


def send_email(
    target: SmtpTarget,
    message: EmailMessage,
    timeout: float = 30,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Send ``message`` through the SMTP server ``target``; recipients come from its ``To`` header.

    Connects with ``SMTP_SSL`` for ``use_tls`` or plain ``SMTP`` (then
    ``STARTTLS`` when ``starttls``), logs in when the target has
    credentials, and sends. ``timeout`` (seconds) applies to connecting and to
    every socket operation. TLS verifies the server's certificate and host
    name with ``ssl_context`` (default: the system's trusted CAs).

    Raises :class:`DeliveryFailed` (redacted, naming the server) when the
    server cannot be reached, TLS or login fails, or a recipient or the
    message is refused.
    """
    secrets = (target.password,) if target.password else ()
    context = ssl_context or ssl.create_default_context()
    try:
        if target.use_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with client:
            if target.starttls:
                client.starttls(context=context)
            if target.username is not None and target.password is not None:
                client.login(target.username, target.password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(redact(
            f"SMTP server {target.address} refused the login of user {target.username!r}: {_smtp_reply(exc)}",
            secrets)) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed(f"SMTP server {target.address} refused the recipient") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(redact(
            f"SMTP server {target.address} refused the message: {_smtp_reply(exc)}", secrets)) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DeliveryFailed(redact(
            f"could not send email through SMTP server {target.address}: {reason}", secrets)) from None
    if refused:
        raise DeliveryFailed(f"SMTP server {target.address} refused {len(refused)} recipient(s)")


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return f"{exc.smtp_code} {text}".strip()
