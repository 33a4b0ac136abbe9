"""The SMTP server: ``ECLIPSE_SMTP_URL`` parsed into a target, and a message sent through it.

Passwords from the SMTP URL never appear in a ``repr``, ``str`` or error message.
"""

import functools
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qsl, unquote, urlsplit

from eclipse_exports.config import redact

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


class DeliveryFailed(Exception):
    """The SMTP server could not be reached or did not accept the message.

    ``str(exc)`` is a readable, redacted cause (server host and port, the
    error); it never contains the SMTP password. Retrying may help.
    """


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


# --------------------------------------------------------------------------- sending


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """The system's trusted CAs with host-name checks, built once per process and shared by every TLS connection.

    Building one reads the whole CA bundle (tens of milliseconds of CPU); a weekly fan-out mails hundreds of
    reports from one run worker, so it is not rebuilt per message. An ``SSLContext`` is safe to share.
    """
    return ssl.create_default_context()


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
    name with ``ssl_context`` (default: :func:`default_tls_context`); a
    plain connection without ``STARTTLS`` builds no TLS context at all.

    Raises :class:`DeliveryFailed` (redacted, naming the server) when the
    server cannot be reached, TLS or login fails, or a recipient or the
    message is refused.
    """
    secrets = (target.password,) if target.password else ()
    try:
        if target.use_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                                    context=ssl_context or default_tls_context())
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with client:
            if target.starttls:
                client.starttls(context=ssl_context or default_tls_context())
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
