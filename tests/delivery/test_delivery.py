"""Email delivery on real services: an aiosmtpd server on a free port, SQLite and PostgreSQL sources.

Nothing is mocked: messages really cross a socket (plain, STARTTLS, implicit TLS,
with and without login) and are parsed from the bytes the server received.
"""

import datetime as dt
import email
import ipaddress
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine

from eclipse_exports.delivery.email import DEFAULT_SENDER, build_export_email
from eclipse_exports.delivery.recipients import recipient_for
from eclipse_exports.delivery.smtp import DeliveryFailed, SmtpTarget, parse_smtp_url, send_email
from eclipse_exports.local.services import free_port
from eclipse_exports.models import ExportRequest

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret-Pa55word-do-not-print"
EXPIRES = dt.datetime(2026, 12, 1, 9, 30, 15, tzinfo=dt.UTC)
# A presigned-looking URL: '&' must become '&amp;' in HTML, '<script>' must never survive.
HOSTILE_URL = "https://s3.example/bucket/file.csv?X-Amz-Signature=ab&X-Amz-Expires=3600&q=<script>alert(1)</script>"
HOSTILE_BRAND = '<script>alert("x")</script> & Sons'


# --------------------------------------------------------------------------- SMTP server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class CollectingHandler:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def _authenticator(server, session, envelope, mechanism: str, auth_data) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    handler: CollectingHandler
    host: str
    port: int


@pytest.fixture
def start_smtp() -> Iterator:
    """Start aiosmtpd controllers on free ports; all are stopped after the test."""
    controllers: list[Controller] = []

    def start(**kwargs) -> SmtpServer:
        handler = CollectingHandler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer(handler, "127.0.0.1", controller.port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp) -> SmtpServer:
    return start_smtp()


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway self-signed certificate for 127.0.0.1 and a client context that trusts only it."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eclipse-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server=server, client=client)


# --------------------------------------------------------------------------- helpers


def _request(**overrides) -> ExportRequest:
    payload = {"id": "job-42", "workspaceId": "ws_acme", "userId": "usr_acme_analyst",
               "resourceType": "alerts", "format": "csv", "delivery": "email"} | overrides
    return ExportRequest.from_payload(json.dumps(payload))


def _email(to: str = "u_analyst@mail.example", request: ExportRequest | None = None, **overrides) -> EmailMessage:
    fields = {"download_url": "https://s3.example/bucket/file.csv?sig=abc", "expires_at": EXPIRES,
              "row_count": 1234, "file_name": "20261128T093015Z-alerts-job-42.csv"} | overrides
    return build_export_email(to, request or _request(), **fields)


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


# --------------------------------------------------------------------------- recipient_for


def test_recipient_for_returns_a_members_own_address(source: Engine):
    with source.connect() as conn:
        assert recipient_for(conn, "ws_a", "u_analyst") == "u_analyst@mail.example"
        assert recipient_for(conn, "ws_a", "u_viewer") == "u_viewer@mail.example"
        assert recipient_for(conn, "ws_b", "u_b") == "u_b@mail.example"


@pytest.mark.parametrize(("workspace_id", "user_id"), [
    ("ws_a", "u_b"),           # a real user, member of another workspace
    ("ws_a", "u_none"),        # a real user, member of no workspace
    ("ws_a", "u_ghost"),       # no such user
    ("ws_ghost", "u_analyst"),  # no such workspace
    ("ws_a", "u_analyst' OR '1'='1"),  # bound parameters: text is never SQL
    ("ws_a' OR '1'='1", "u_analyst"),
])
def test_recipient_for_is_none_unless_member(source: Engine, workspace_id: str, user_id: str):
    with source.connect() as conn:
        assert recipient_for(conn, workspace_id, user_id) is None


# --------------------------------------------------------------------------- sending, end to end


def test_email_arrives_with_link_subject_and_escaped_html(smtp_server: SmtpServer):
    request = _request(filters={"brand": [HOSTILE_BRAND], "severity": ["high", "critical"]},
                       options={"compression": "gzip"})
    message = _email("u_analyst@mail.example", request, download_url=HOSTILE_URL, row_count=1,
                     file_name="20261128T093015Z-alerts-job-42.csv.gz")

    send_email(parse_smtp_url(f"smtp://{smtp_server.host}:{smtp_server.port}"), message, timeout=10)

    [got] = smtp_server.handler.received
    assert got.rcpt_tos == ["u_analyst@mail.example"]
    assert got.mail_from == "exports@eclipse.invalid"
    received = got.message
    assert received["To"] == "u_analyst@mail.example"
    assert received["From"] == DEFAULT_SENDER
    assert received["Subject"] == "Your Eclipse alerts export is ready (ws_acme)"
    assert received.get_content_type() == "multipart/alternative"
    text, html = _parts(received)

    # plain text: everything verbatim
    assert HOSTILE_URL in text
    assert HOSTILE_BRAND in text
    assert "2026-12-01T09:30:15Z" in text
    assert "Rows:     1" in text.splitlines()
    assert "CSV (gzip)" in text
    assert "20261128T093015Z-alerts-job-42.csv.gz" in text

    # HTML: the link is there, escaped; nothing hostile survives
    escaped_url = ("https://s3.example/bucket/file.csv?X-Amz-Signature=ab&amp;X-Amz-Expires=3600"
                   "&amp;q=&lt;script&gt;alert(1)&lt;/script&gt;")
    assert f'href="{escaped_url}"' in html
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Sons" in html
    assert "X-Amz-Signature=ab&X-Amz" not in html
    assert '<time datetime="2026-12-01T09:30:15Z">2026-12-01T09:30:15Z</time>' in html
    assert "1 row." in html
    assert "CSV (gzip)" in html
    assert "high, critical" in html


def test_large_counts_naive_expiry_and_custom_sender(smtp_server: SmtpServer):
    message = build_export_email(
        "u_owner@mail.example", _request(resourceType="infringements", format="parquet", workspaceId="ws_a"),
        download_url="https://s3.example/f.parquet", expires_at=dt.datetime(2026, 12, 1, 9, 0),  # naive: UTC
        row_count=1_234_567, file_name="f.parquet", sender="Acme Reports <reports@acme.example>")
    send_email(SmtpTarget(smtp_server.host, smtp_server.port), message, timeout=10)

    [got] = smtp_server.handler.received
    assert got.mail_from == "reports@acme.example"
    assert got.message["Subject"] == "Your Eclipse infringements export is ready (ws_a)"
    assert got.message["Message-ID"].endswith("@acme.example>")
    text, html = _parts(got.message)
    for body in (text, html):
        assert "1,234,567" in body
        assert "2026-12-01T09:00:00Z" in body
        assert "PARQUET" in body
    assert "none (all rows)" in text and "none (all rows)" in html


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_credentials_from_the_url(start_smtp):
    server = start_smtp(authenticator=_authenticator, auth_required=True, auth_require_tls=False)
    target = parse_smtp_url(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@{server.host}:{server.port}")

    send_email(target, _email(), timeout=10)
    assert [r.rcpt_tos for r in server.handler.received] == [["u_analyst@mail.example"]]

    wrong = parse_smtp_url(f"smtp://{SMTP_USER}:wrong-{SMTP_PASSWORD}@{server.host}:{server.port}")
    with pytest.raises(DeliveryFailed) as caught:
        send_email(wrong, _email(), timeout=10)
    message = str(caught.value)
    assert "refused the login" in message and f"{server.host}:{server.port}" in message
    assert SMTP_PASSWORD not in message and SMTP_PASSWORD not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    anonymous = SmtpTarget(server.host, server.port)  # the server requires AUTH: the message is refused
    with pytest.raises(DeliveryFailed, match="refused"):
        send_email(anonymous, _email(), timeout=10)
    assert len(server.handler.received) == 1


def test_starttls_and_login(start_smtp, tls: Tls):
    server = start_smtp(tls_context=tls.server, require_starttls=True, authenticator=_authenticator,
                        auth_required=True)
    target = parse_smtp_url(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@{server.host}:{server.port}?starttls=true")
    send_email(target, _email(), timeout=10, ssl_context=tls.client)
    assert len(server.handler.received) == 1

    with pytest.raises(DeliveryFailed) as caught:  # the system CAs do not trust the test certificate
        send_email(target, _email(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert SMTP_PASSWORD not in str(caught.value)


def test_implicit_tls(start_smtp, tls: Tls):
    server = start_smtp(ssl_context=tls.server)
    send_email(parse_smtp_url(f"smtps://{server.host}:{server.port}"), _email(), timeout=10,
               ssl_context=tls.client)
    [got] = server.handler.received
    assert got.message["Subject"] == "Your Eclipse alerts export is ready (ws_acme)"


def test_unreachable_server_raises_delivery_failed():
    port = free_port()  # nothing listens here
    target = parse_smtp_url(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}")
    with pytest.raises(DeliveryFailed) as caught:
        send_email(target, _email(), timeout=5)
    message = str(caught.value)
    assert message.startswith(f"could not send email through SMTP server 127.0.0.1:{port}: ")
    assert "refused" in message.lower()
    assert SMTP_PASSWORD not in message


def test_tls_to_a_plain_server_raises_delivery_failed(smtp_server: SmtpServer):
    target = parse_smtp_url(f"smtps://{smtp_server.host}:{smtp_server.port}")
    with pytest.raises(DeliveryFailed, match=f"SMTP server 127.0.0.1:{smtp_server.port}"):
        send_email(target, _email(), timeout=5)
    assert smtp_server.handler.received == []


# --------------------------------------------------------------------------- building


@pytest.mark.parametrize(("to", "overrides"), [
    ("u_analyst@mail.example\r\nBcc: victim@evil.example", {}),
    ("a@b.example, c@d.example", {}),
    ("not-an-address", {}),
    ("", {}),
    ("u@mail.example", {"download_url": "javascript:alert(1)"}),
    ("u@mail.example", {"download_url": "/relative/path.csv"}),
    ("u@mail.example", {"download_url": "https://s3.example/a b.csv"}),
    ("u@mail.example", {"download_url": "https://s3.example/a.csv\r\nX: y"}),
    ("u@mail.example", {"row_count": -1}),
])
def test_build_refuses_bad_input(to: str, overrides: dict):
    with pytest.raises(ValueError):
        _email(to, **overrides)


def test_build_refuses_a_sender_with_a_line_break():
    with pytest.raises(ValueError, match="sender"):
        build_export_email("u@mail.example", _request(), download_url="https://s3.example/f.csv",
                           expires_at=EXPIRES, row_count=1, file_name="f.csv",
                           sender="x@y.example\r\nBcc: victim@evil.example")


def test_report_subject_and_filters_in_both_parts():
    request = _request(resourceType="actions", format="jsonl", filters={
        "status": ["pending", "failed"], "from": "2026-11-01T00:00:00+02:00", "to": "2026-11-15T00:00:00Z"})
    message = _email(request=request)
    assert message["Subject"] == "Your Eclipse actions export is ready (ws_acme)"
    assert message["X-Eclipse-Job-Id"] == "job-42"
    text, html = _parts(message)
    for body in (text, html):
        assert "pending, failed" in body
        assert "2026-10-31T22:00:00Z" in body  # converted to UTC
        assert "2026-11-15T00:00:00Z" in body
        assert "JSONL" in body


# --------------------------------------------------------------------------- parse_smtp_url


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example:25", SmtpTarget("mail.example", 25)),
    ("smtp://mail.example", SmtpTarget("mail.example", 25)),
    ("SMTP://Mail.Example:2525/", SmtpTarget("mail.example", 2525)),
    ("smtp://127.0.0.1:1025", SmtpTarget("127.0.0.1", 1025)),
    ("smtp://[::1]:1025", SmtpTarget("::1", 1025)),
    ("smtp://user:pass@mail.example:587", SmtpTarget("mail.example", 587, "user", "pass")),
    ("smtp://user:pass@mail.example:587?starttls=true",
     SmtpTarget("mail.example", 587, "user", "pass", starttls=True)),
    ("smtp://mail.example:25?starttls=false", SmtpTarget("mail.example", 25)),
    ("smtps://mail.example", SmtpTarget("mail.example", 465, use_tls=True)),
    ("smtps://user%40corp.example:p%40ss%3Aw%2Ford@mail.example:465",
     SmtpTarget("mail.example", 465, "user@corp.example", "p@ss:w/ord", use_tls=True)),
    ("  smtp://mail.example:25  ", SmtpTarget("mail.example", 25)),
])
def test_parse_smtp_url_accepts(url: str, expected: SmtpTarget):
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(("url", "reason"), [
    ("", "empty"),
    ("mail.example:25", "must start with smtp:// or smtps://"),
    ("http://mail.example:25", "must start with smtp:// or smtps://"),
    ("smtp+starttls://mail.example:25", "must start with smtp:// or smtps://"),
    ("smtp://", "no host"),
    ("smtp://:25", "no host"),
    ("smtp://mail.example:abc", "port"),
    ("smtp://mail.example:0", "port"),
    ("smtp://mail.example:70000", "port"),
    ("smtp://mail.example:25/path", "path"),
    ("smtp://mail.example:25#frag", "fragment"),
    ("smtp://mail.example:25?tls=1", "unknown parameter 'tls'"),
    ("smtp://mail.example:25?starttls=maybe", "'starttls' must be true or false"),
    ("smtps://mail.example:465?starttls=true", "already TLS"),
    ("smtp://user@mail.example:25", "user name but no password"),
    ("smtp://:pass@mail.example:25", "password but no user name"),
    ("smtp://mail.example :25", "whitespace"),
    ("smtp://[::1:25", "malformed"),
])
def test_parse_smtp_url_refuses(url: str, reason: str):
    with pytest.raises(ValueError) as caught:
        parse_smtp_url(url)
    assert reason in str(caught.value)


@pytest.mark.parametrize("url", [
    f"smtp://mailer:{SMTP_PASSWORD}@mail.example:abc",
    f"smtp://mailer:{SMTP_PASSWORD}@mail.example:25/path",
    f"smtp://mailer:{SMTP_PASSWORD}@mail.example:25?tls=1",
    f"smtps://mailer:{SMTP_PASSWORD}@mail.example:465?starttls=true",
    f"http://mailer:{SMTP_PASSWORD}@mail.example:25",
    f"smtp://mailer:{SMTP_PASSWORD}@mail\uff03example:25",  # urlsplit's own error would quote the netloc
    f"smtp://mailer:{SMTP_PASSWORD}@[::1:25",
    f"smtp://mailer:{SMTP_PASSWORD} @mail.example:25",
    f"smtp://mailer:{SMTP_PASSWORD}",
])
def test_parse_errors_never_show_the_password(url: str):
    with pytest.raises(ValueError) as caught:
        parse_smtp_url(url)
    assert SMTP_PASSWORD not in str(caught.value)
    assert SMTP_PASSWORD not in repr(caught.value)


def test_target_str_and_repr_never_show_the_password():
    target = parse_smtp_url(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@mail.example:587?starttls=true")
    assert target.password == SMTP_PASSWORD
    for shown in (str(target), repr(target), f"{target}", f"{target!r}", str([target])):
        assert SMTP_PASSWORD not in shown
    assert str(target) == "smtp://mailer:***@mail.example:587?starttls=true"
    assert "mail.example" in repr(target) and "password" not in repr(target)
    assert str(parse_smtp_url("smtps://[::1]")) == "smtps://[::1]:465"
