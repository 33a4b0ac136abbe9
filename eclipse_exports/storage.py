"""Object storage for export files: keys, streaming multipart uploads, presigned URLs, deletes, quota.

Nothing else in the project builds an object key. Keys follow CONTRACT
section 4 under the configured prefix:
``{prefix}/workspaces/{workspaceId}/exports/{YYYYMMDDTHHMMSSZ}-{resourceType}-{id}.{ext}``.
Ids are checked against the CONTRACT id pattern before they reach a key, so
no request value can climb out of its workspace's prefix.
"""

import hashlib
import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import boto3
from botocore.client import Config as BotoConfig
from botocore.exceptions import ClientError

from eclipse_exports.models import ID_RE, ResourceType

PART_BYTES = 5 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 2


def _checked_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError(f"{kind} {value!r} does not match the CONTRACT id pattern")
    return value


def make_s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client; credentials and region come from boto3's usual sources (env vars).

    Path-style addressing is used when an endpoint is given (SeaweedFS, moto, MinIO).
    """
    config = BotoConfig(
        s3={"addressing_style": "path"} if endpoint_url else {},
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=MAX_PARTS_IN_FLIGHT + 4,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config)


class UploadAborted(RuntimeError):
    """A multipart upload failed and was aborted; no parts are left behind."""


class MultipartUpload(io.RawIOBase):
    """A write-only binary stream that lands in S3 as one object.

    Bytes are buffered up to ``part_bytes`` (default 5 MiB, S3's minimum) and sent as parts,
    at most ``MAX_PARTS_IN_FLIGHT`` at a time in background threads, so memory
    stays near ``part_bytes * (MAX_PARTS_IN_FLIGHT + 1)`` whatever the file
    size. A file smaller than one part is sent with a single ``PutObject``.
    :meth:`complete` finishes the object; :meth:`abort` (or leaving a ``with``
    block on an exception) removes every uploaded part. :attr:`sha256` is the
    hex SHA-256 of every byte written, computed on the way through (the
    object's verification compares it with a digest of what S3 returns).
    """

    def __init__(self, client: Any, bucket: str, key: str, content_type: str,
                 content_disposition: str | None = None, part_bytes: int = PART_BYTES) -> None:
        super().__init__()
        self._client, self._bucket, self.key = client, bucket, key
        self._extra = {"ContentType": content_type}
        if content_disposition:
            self._extra["ContentDisposition"] = content_disposition
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future] = []
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.Semaphore(MAX_PARTS_IN_FLIGHT)
        self.bytes_written = 0
        self._digest = hashlib.sha256()
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a finished upload")
        view = memoryview(data)
        self._buffer += view
        self._digest.update(view)
        self.bytes_written += view.nbytes
        while len(self._buffer) >= self._part_bytes:
            chunk = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            self._send_part(chunk)
        return view.nbytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far (of the whole object once complete)."""
        return self._digest.hexdigest()

    def _send_part(self, chunk: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self.key, **self._extra)[
                "UploadId"
            ]
            self._pool = ThreadPoolExecutor(max_workers=MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        number = len(self._parts) + 1
        self._slots.acquire()
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, number, chunk)
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _upload_part(self, number: int, chunk: bytes) -> dict:
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=chunk
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def complete(self) -> int:
        """Send what is buffered and finish the object. Returns its size in bytes.

        Raises :class:`UploadAborted` (after aborting) when any part failed.
        """
        if self._finished:
            return self.bytes_written
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=self._bucket, Key=self.key, Body=bytes(self._buffer), **self._extra)
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                parts = [f.result() for f in self._parts]
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
                )
        except Exception as exc:
            self.abort()
            raise UploadAborted(f"upload of {self.key} failed: {exc}") from exc
        self._buffer = bytearray()
        self._finished = True
        self._shutdown()
        return self.bytes_written

    def abort(self) -> None:
        """Stop the upload and delete every part already sent. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        for future in self._parts:
            future.cancel()
        self._shutdown()
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Closing without :meth:`complete` aborts: a half-written file never becomes an object."""
        if not self._finished:
            self.abort()
        super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.complete()
        else:
            self.abort()
        super().close()


class ObjectMissing(LookupError):
    """No object is stored at the key asked for."""


@dataclass
class StoredObject:
    """An object being read: ``body`` is botocore's streaming body (``read(n)``, ``close()``)."""

    key: str
    body: Any
    size: int
    content_type: str | None
    content_disposition: str | None


class ExportStorage:
    """Export files of all workspaces in one bucket, each workspace under its own prefix.

    ``client`` is a boto3 S3 client (see :func:`make_s3_client`); ``prefix``
    is the optional deployment prefix (``ECLIPSE_S3_PREFIX``).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def workspace_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/`` — everything of one workspace lies under it."""
        return self._key("workspaces", _checked_id("workspace id", workspace_id)) + "/"

    def export_key(self, workspace_id: str, resource: ResourceType, job_id: str, extension: str,
                   at: datetime) -> str:
        """Object key of an on-demand export file (CONTRACT section 4); ``at`` is the job's start."""
        stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        if extension not in ("csv", "json", "jsonl", "parquet", "html", "csv.gz", "json.gz", "jsonl.gz"):
            raise ValueError(f"unknown export file extension {extension!r}")
        name = f"{stamp}-{ResourceType(resource).value}-{_checked_id('job id', job_id)}.{extension}"
        return self.workspace_prefix(workspace_id) + "exports/" + name

    def report_key(self, workspace_id: str, week_start: date) -> str:
        """Object key of a scheduled weekly executive report."""
        return self.workspace_prefix(workspace_id) + f"reports/{week_start.isoformat()}-executive-report.html"

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (local S3 endpoints)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def open_upload(self, key: str, content_type: str, filename: str | None = None,
                    inline: bool = False) -> MultipartUpload:
        """A :class:`MultipartUpload` stream for ``key``; use it as a context manager.

        With a ``filename`` the object is served as a download under that name
        (``Content-Disposition: attachment``), or shown by the browser with
        ``inline=True`` (HTML reports).
        """
        disposition = f'{"inline" if inline else "attachment"}; filename="{filename}"' if filename else None
        return MultipartUpload(self.client, self.bucket, key, content_type, disposition)

    def presign(self, key: str, expires_in_seconds: int) -> str:
        """A GET URL for ``key`` valid for ``expires_in_seconds`` (at least 1)."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=max(1, int(expires_in_seconds))
        )

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``.

        Only a 404 means "no"; any other refusal (403: bad credentials) raises botocore's ``ClientError``.
        """
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

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
                            response.get("ContentDisposition"))

    def delete(self, key: str) -> None:
        """Delete the object at ``key`` (no error when it is already gone)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def iter_objects(self, prefix: str) -> Iterator[dict]:
        """Every object under ``prefix`` as boto3's dicts (``Key``, ``Size``, ``LastModified``)."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def workspace_export_bytes(self, workspace_id: str) -> int:
        """Total size in bytes of the workspace's live export files (for the quota)."""
        return sum(obj["Size"] for obj in self.iter_objects(self.workspace_prefix(workspace_id) + "exports/"))

    def pending_multipart_uploads(self) -> list[dict]:
        """Multipart uploads started and neither completed nor aborted (should be none)."""
        return self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
