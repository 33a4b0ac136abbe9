"""The S3 client and the bucket of export files: uploads opened, presigned URLs, reads, deletes, listings.

:class:`ExportStorage` is the bucket; its keys come from :class:`~eclipse_exports.storage.keys.ObjectKeys`
(nothing else in the project builds or parses an object key) and its uploads are
:class:`~eclipse_exports.storage.multipart.MultipartUpload` streams.
"""

import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import botocore.session
from botocore.client import Config as BotoConfig
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from eclipse_exports.storage.encryption import ServerSideEncryption, require_https
from eclipse_exports.storage.keys import ObjectKeys
from eclipse_exports.storage.multipart import MAX_PARTS_IN_FLIGHT, MultipartUpload, StoredBytesCallback

# S3's DeleteObjects takes at most this many keys per request.
MAX_DELETE_KEYS = 1000


def make_s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """An S3 client (botocore's, which boto3 wraps); credentials come from the usual sources (env vars,
    instance role), the region from ``region``, else ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else ``us-east-1``
    (SigV4 signs with it: a bucket in another region needs its own).

    Path-style addressing is used when an endpoint is given (SeaweedFS, moto, MinIO). The client is made
    from botocore's session directly: importing boto3 would add ~80 ms (its s3transfer) to every process,
    CLI commands and run workers alike, for helpers (``upload_file``…) this project does not use.
    """
    config = BotoConfig(
        s3={"addressing_style": "path"} if endpoint_url else {},
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=MAX_PARTS_IN_FLIGHT + 4,
    )
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return _botocore_session().create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def storage_from_settings(settings: Any, *, endpoint_url: str | None = None, bucket: str | None = None,
                          prefix: str | None = None) -> "ExportStorage":
    """The export bucket of a deployment's :class:`~eclipse_exports.config.Settings` (the arguments override
    its endpoint, bucket and prefix), with its server-side encryption (``ECLIPSE_S3_SSE``).

    Raises :class:`~eclipse_exports.storage.encryption.PlainHttpRefused` for an ``http://`` endpoint outside
    127.0.0.1 without ``ECLIPSE_ALLOW_PLAIN_HTTP``, ``ValueError`` for a bad ``ECLIPSE_S3_SSE``.
    """
    endpoint = endpoint_url or settings.s3_endpoint_url
    require_https(endpoint, "AWS_ENDPOINT_URL", settings.allow_plain_http)
    return ExportStorage(make_s3_client(endpoint), bucket or settings.s3_bucket,
                         settings.s3_prefix if prefix is None else prefix,
                         sse=ServerSideEncryption(settings.s3_sse, settings.s3_sse_kms_key_id))


def _parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser with a fast path for the ISO-8601 dates of S3 listings.

    botocore's own goes through dateutil at about a millisecond a date, which
    was half the time of listing 1,000 objects; ``fromisoformat`` takes microseconds.
    """
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return botocore_parse_timestamp(value)


@functools.cache
def _botocore_session() -> botocore.session.Session:
    """One botocore session per process (as ``boto3.client`` keeps one), with the fast timestamp parser."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
    return session


class ObjectMissing(LookupError):
    """No object is stored at the key asked for."""


@dataclass
class StoredObject:
    """An object being read: ``body`` is botocore's streaming body (``read(n)``, ``close()``); ``encryption``
    the reply's ``ServerSideEncryption`` and ``SSEKMSKeyId`` (what :meth:`ServerSideEncryption.matches` reads)."""

    key: str
    body: Any
    size: int
    content_type: str | None
    content_disposition: str | None
    encryption: dict[str, str] = field(default_factory=dict)


class ExportStorage(ObjectKeys):
    """Export files of all workspaces in one bucket, each workspace under its own prefix.

    ``client`` is an S3 client (see :func:`make_s3_client`); ``prefix``
    is the optional deployment prefix (``ECLIPSE_S3_PREFIX``); ``sse`` the server-side encryption of every
    object written (SSE-S3 unless told otherwise). Every presign and delete names the workspace it acts for
    and passes :meth:`~eclipse_exports.storage.keys.ObjectKeys.check_key` first.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "",
                 sse: ServerSideEncryption | None = None) -> None:
        super().__init__(prefix)
        self.client, self.bucket = client, bucket
        self.sse = sse or ServerSideEncryption()


    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (local S3 endpoints)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def open_upload(self, key: str, content_type: str, filename: str | None = None,
                    inline: bool = False, metadata: dict[str, str] | None = None,
                    on_stored: StoredBytesCallback | None = None) -> MultipartUpload:
        """A :class:`MultipartUpload` stream for ``key``; use it as a context manager.

        With a ``filename`` the object is served as a download under that name
        (``Content-Disposition: attachment``), or shown by the browser with
        ``inline=True`` (HTML reports). ``metadata`` (see :meth:`export_metadata`)
        and ``on_stored`` are passed to the upload.
        """
        disposition = f'{"inline" if inline else "attachment"}; filename="{filename}"' if filename else None
        return MultipartUpload(self.client, self.bucket, key, content_type, disposition, metadata=metadata,
                               on_stored=on_stored, encryption=self.sse.put_args())

    def presign(self, key: str, expires_in_seconds: int, *, workspace_id: str) -> str:
        """A GET URL for ``key`` valid for ``expires_in_seconds`` (at least 1).

        ``key`` must be a file this project writes under ``workspace_id``'s own prefix (the tenant the caller
        acts for): anything else raises :class:`~eclipse_exports.storage.keys.KeyRefused` before S3 is asked.
        """
        self.check_key(key, workspace_id)
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=max(1, int(expires_in_seconds))
        )

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``.

        Only a 404 means "no"; any other refusal (403: bad credentials) raises botocore's ``ClientError``.
        """
        return self.object_size(key) is not None

    def object_size(self, key: str) -> int | None:
        """Size in bytes of the object at ``key``; ``None`` when there is none.

        Raises botocore errors other than not-found (an outage is not "no object").
        """
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def head(self, key: str) -> dict[str, Any] | None:
        """The ``HeadObject`` reply for ``key`` (size, encryption, metadata…); ``None`` when nothing is there.

        Raises botocore errors other than not-found.
        """
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def encryption_problem(self, key: str) -> str | None:
        """``None`` when the object at ``key`` is stored with the configured encryption (``ECLIPSE_S3_SSE``),
        else why not in one line (no object counts as a problem)."""
        head = self.head(key)
        return "no object is stored there" if head is None else self.sse.matches(head)

    def open_object(self, key: str) -> StoredObject:
        """Start a streamed GET of ``key``; read ``body`` in chunks and close it.

        Raises :class:`ObjectMissing` when nothing is stored there, botocore's
        errors when S3 cannot be reached.
        """
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(key) from None
            raise
        return StoredObject(key, response["Body"], int(response["ContentLength"]), response.get("ContentType"),
                            response.get("ContentDisposition"),
                            {k: response[k] for k in ("ServerSideEncryption", "SSEKMSKeyId") if response.get(k)})

    def delete(self, key: str, *, workspace_id: str) -> None:
        """Delete the object at ``key`` (no error when it is already gone).

        ``key`` must lie under ``workspace_id``'s own prefix (:meth:`check_key`; raises ``KeyRefused``).
        """
        self.check_key(key, workspace_id, project_key=False)
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_keys(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Delete up to 1,000 objects, given as ``(key, workspace id)``, in one ``DeleteObjects`` request.

        Each key must lie under its workspace's own prefix (:meth:`check_key`): a refused one is not sent and
        is returned with the refusal as its cause. Returns ``(key, cause)`` for each key refused or that S3
        refused (the others are gone; a key already absent counts as deleted). Raises ``ValueError`` for more
        than 1,000 keys and botocore errors when the request as a whole fails.
        """
        checked, refused = [], []
        for key, workspace_id in keys:
            try:
                self.check_key(key, workspace_id, project_key=False)
                checked.append(key)
            except ValueError as exc:
                refused.append((key, str(exc)))
        keys = checked
        if len(keys) + len(refused) > MAX_DELETE_KEYS:
            raise ValueError(f"DeleteObjects takes at most {MAX_DELETE_KEYS} keys, not {len(keys) + len(refused)}")
        if not keys:
            return refused
        response = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        return refused + [(e.get("Key", ""), f"{e.get('Code', 'Error')}: {e.get('Message', '')}".strip())
                          for e in response.get("Errors", [])]

    def iter_objects(self, prefix: str) -> Iterator[dict]:
        """Every object under ``prefix``, in key order, as boto3's dicts (``Key``, ``Size``, ``LastModified``).

        Pages of 1,000 are fetched as the caller iterates, so memory stays flat.
        """
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def iter_uploads(self, prefix: str) -> Iterator[dict]:
        """Incomplete multipart uploads under ``prefix`` as boto3's dicts (``Key``, ``UploadId``, ``Initiated``)."""
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", [])

    def upload_bytes(self, key: str, upload_id: str) -> int:
        """Bytes S3 already holds for an incomplete upload (the sum of its parts; 0 once it is gone)."""
        try:
            return sum(part["Size"] for page in self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=upload_id) for part in page.get("Parts", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return 0
            raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an incomplete upload, deleting its parts (no error when it is already gone)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def workspace_export_bytes(self, workspace_id: str) -> int:
        """Bytes the workspace's export files take, incomplete uploads included: what the quota counts.

        Lists every object and upload under the workspace's ``exports/``; the
        quota check reads a counter instead (``usage.py``) and this is its reconciliation.
        """
        stored = sum(obj["Size"] for obj in self.iter_objects(self.exports_prefix(workspace_id)))
        return stored + self.workspace_upload_bytes(workspace_id)

    def workspace_upload_bytes(self, workspace_id: str) -> int:
        """Bytes held by the incomplete uploads under the workspace's ``exports/``."""
        return sum(self.upload_bytes(u["Key"], u["UploadId"])
                   for u in self.iter_uploads(self.exports_prefix(workspace_id)))

    def pending_multipart_uploads(self) -> list[dict]:
        """Multipart uploads started and neither completed nor aborted (should be none)."""
        return list(self.iter_uploads(""))
