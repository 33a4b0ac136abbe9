"""Server-side encryption at rest (``ECLIPSE_S3_SSE``) and the TLS rule for the S3 endpoint.

Every object the project writes (exports, reports, audit archives, and every multipart upload's parts) is
written with :class:`ServerSideEncryption`'s arguments; :meth:`ServerSideEncryption.matches` is what the asset
check ``file_intact`` reads back from a HEAD. :func:`require_https` refuses a plain-HTTP endpoint outside the
loopback address unless the operator opted out (``ECLIPSE_ALLOW_PLAIN_HTTP``).
"""

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

SseMode = Literal["AES256", "aws:kms", "none"]
SSE_MODES: tuple[SseMode, ...] = ("AES256", "aws:kms", "none")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class PlainHttpRefused(ValueError):
    """An endpoint outside 127.0.0.1 given as ``http://`` without the operator's explicit opt-out."""


@dataclass(frozen=True)
class ServerSideEncryption:
    """How S3 encrypts what the project writes.

    ``mode`` is ``AES256`` (SSE-S3, the default), ``aws:kms`` (SSE-KMS with ``kms_key_id``, a key id, ARN or
    alias; without one S3 uses the account's default ``aws/s3`` key) or ``none`` (an S3 server without SSE).
    Raises ``ValueError`` for another mode or a key id without ``aws:kms``.
    """

    mode: SseMode = "AES256"
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in SSE_MODES:
            raise ValueError(f"ECLIPSE_S3_SSE must be one of {', '.join(SSE_MODES)}, not {self.mode!r}")
        if self.kms_key_id and self.mode != "aws:kms":
            raise ValueError("ECLIPSE_S3_SSE_KMS_KEY_ID needs ECLIPSE_S3_SSE=aws:kms")

    def put_args(self) -> dict[str, Any]:
        """The arguments ``PutObject`` and ``CreateMultipartUpload`` take (empty for ``none``); parts inherit
        the upload's encryption, so ``UploadPart`` needs none."""
        if self.mode == "none":
            return {}
        args: dict[str, Any] = {"ServerSideEncryption": self.mode}
        if self.mode == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def matches(self, head: dict[str, Any]) -> str | None:
        """``None`` when a ``HeadObject`` reply shows this encryption; else why not, in one line.

        With ``none`` anything passes (the operator said the server has no SSE). With a KMS key id, the
        object's ``SSEKMSKeyId`` must end with it (S3 answers with the key's full ARN).
        """
        if self.mode == "none":
            return None
        found = head.get("ServerSideEncryption")
        if found != self.mode:
            return f"stored with server-side encryption {found or 'none'}, not {self.mode} (ECLIPSE_S3_SSE)"
        key = head.get("SSEKMSKeyId") or ""
        if self.mode == "aws:kms" and self.kms_key_id and not key.endswith(self.kms_key_id):
            return f"encrypted with KMS key {key or '(none)'}, not {self.kms_key_id} (ECLIPSE_S3_SSE_KMS_KEY_ID)"
        return None

    def describe(self) -> str:
        """``AES256``, ``aws:kms (key …)`` or ``none``: for metadata and logs."""
        return f"aws:kms (key {self.kms_key_id})" if self.mode == "aws:kms" and self.kms_key_id else self.mode


def require_https(url: str | None, what: str, allow_plain_http: bool) -> None:
    """Refuse ``http://`` for ``url`` unless its host is the loopback address or ``allow_plain_http``.

    ``what`` names the setting in the message (``AWS_ENDPOINT_URL``). ``None`` (AWS itself, always HTTPS)
    passes. Raises :class:`PlainHttpRefused`.
    """
    if not url:
        return
    parsed = urlparse(url)
    if parsed.scheme == "http" and (parsed.hostname or "") not in LOOPBACK_HOSTS and not allow_plain_http:
        raise PlainHttpRefused(
            f"{what} {url} is plain HTTP outside 127.0.0.1: presigned links and credentials would travel in "
            "clear. Use https://, or set ECLIPSE_ALLOW_PLAIN_HTTP=1 to accept it explicitly")
