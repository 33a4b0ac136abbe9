"""A fault-injecting HTTP proxy in front of a test S3 endpoint (moto's server, SeaweedFS).

Point a client at ``proxy.url`` instead of the endpoint; every request is
forwarded unchanged (method, path, query, headers with ``Host``, body) and the
answer relayed, except those a fault rule matches::

    with S3FaultProxy(s3_endpoint) as proxy:
        storage = ExportStorage(make_s3_client(proxy.url), bucket)
        rule = proxy.inject(method="POST", query=r"(^|&)delete(=|&|$)", body=b"/ws_bad/", status=500)
        ...                      # every DeleteObjects naming a ws_bad key gets a 500
        assert rule.hits >= 1
        proxy.clear()            # healthy again

A rule matches on any of: ``method``; ``path`` and ``query`` (regular
expressions searched in the request path and raw query string); ``body``
(a byte string the request body contains). What it does:

- ``status=N`` answers with an S3-style XML error (never forwarded);
- ``refuse=True`` resets the connection without an answer (an outage);
- ``delay=seconds`` forwards after a pause (a slow endpoint).

It applies to the first ``times`` matching requests (``None``: all) and, with
``for_seconds``, only within that many seconds after :meth:`S3FaultProxy.inject`.
Rules are tried in the order added; the first live match decides. botocore
retries 500/503 and resets (standard mode, 5 attempts), so a fault meant to
defeat a call must match every attempt (leave ``times`` unset).
"""

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}
S3_CODES = {500: "InternalError", 503: "SlowDown", 403: "AccessDenied", 404: "NoSuchKey", 400: "BadRequest"}


@dataclass
class FaultRule:
    """One fault; see the module docstring. ``hits`` counts the requests it answered or delayed."""

    method: str | None = None
    path: str | None = None
    query: str | None = None
    body: bytes | None = None
    status: int | None = None
    refuse: bool = False
    delay: float = 0.0
    times: int | None = None
    for_seconds: float | None = None
    hits: int = 0
    added_at: float = field(default_factory=time.monotonic)

    def live(self) -> bool:
        """Whether the rule still applies (count and time window)."""
        if self.times is not None and self.hits >= self.times:
            return False
        return self.for_seconds is None or time.monotonic() - self.added_at < self.for_seconds

    def matches(self, method: str, path: str, query: str, body: bytes) -> bool:
        """Whether a request with these parts is one the rule is about."""
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or re.search(self.path, path) is not None)
                and (self.query is None or re.search(self.query, query) is not None)
                and (self.body is None or self.body in body))


@dataclass(frozen=True)
class SeenRequest:
    """A request that went through the proxy and what became of it (status sent, or ``refused``)."""

    method: str
    path: str
    query: str
    outcome: str


class S3FaultProxy:
    """The proxy server: :meth:`start` (or ``with``) listens on a free port of 127.0.0.1, :attr:`url` is its address.

    ``upstream`` is the real endpoint's ``http://host:port``. :attr:`requests`
    lists every request seen, in order.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.requests: list[SeenRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:{port}`` — the endpoint URL to give the S3 client."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "S3FaultProxy":
        """Serve in a background thread; returns itself."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "S3FaultProxy":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def inject(self, *, method: str | None = None, path: str | None = None, query: str | None = None,
               body: bytes | None = None, status: int | None = None, refuse: bool = False, delay: float = 0.0,
               times: int | None = None, for_seconds: float | None = None) -> FaultRule:
        """Add a fault rule (see the module docstring) and return it. Needs ``status``, ``refuse`` or ``delay``."""
        if status is None and not refuse and not delay:
            raise ValueError("a fault needs status=, refuse=True or delay=")
        rule = FaultRule(method, path, query, body, status, refuse, delay, times, for_seconds)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Stop applying ``rule``."""
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        """Remove every rule: the endpoint is healthy again."""
        with self._lock:
            self._rules = []

    def _decide(self, method: str, path: str, query: str, body: bytes) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.live() and rule.matches(method, path, query, body):
                    rule.hits += 1
                    return rule
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                path, _, query = self.path.partition("?")
                body = self._body()
                rule = proxy._decide(self.command, path, query, body)
                if rule is not None and rule.refuse:
                    proxy.requests.append(SeenRequest(self.command, path, query, "refused"))
                    # SO_LINGER 0: close with a reset, as a dead endpoint would.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if rule is not None and rule.status is not None:
                    proxy.requests.append(SeenRequest(self.command, path, query, str(rule.status)))
                    code = S3_CODES.get(rule.status, "InjectedFault")
                    payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                               f"<Message>fault injected by the test proxy</Message></Error>").encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                if rule is not None and rule.delay:
                    time.sleep(rule.delay)
                self._forward(path, query, body)

            def _forward(self, path: str, query: str, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in HOP_BY_HOP:
                            upstream.putheader(name, value)
                    upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    payload = response.read()
                    proxy.requests.append(SeenRequest(self.command, path, query, str(response.status)))
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names

        return Handler
