"""Object storage for export files: keys, streaming multipart uploads, presigned URLs, deletes, listings.

Nothing else in the project builds or parses an object key. Keys follow
CONTRACT section 4 under the configured prefix:
``{prefix}/workspaces/{workspaceId}/exports/{YYYYMMDDTHHMMSSZ}-{resourceType}-{id}.{ext}`` and
``{prefix}/workspaces/{workspaceId}/reports/{YYYY-MM-DD}-executive-report.html``.
Ids are checked against the CONTRACT id pattern before they reach a key, so
no request value can climb out of its workspace's prefix; :meth:`ExportStorage.parse_key`
is the inverse, used by retention to find a file's workspace and job.
"""

import functools
import hashlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import boto3
import botocore.session
from botocore.client import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from eclipse_exports.models import ID_RE, ResourceType

PART_BYTES = 5 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 2
# How long an abort keeps trying through an S3 outage (each try is botocore's 5 attempts).
ABORT_BUDGET_SECONDS = 60.0
# S3's DeleteObjects takes at most this many keys per request.
MAX_DELETE_KEYS = 1000
EXPORT_EXTENSIONS = ("csv", "json", "jsonl", "parquet", "html", "csv.gz", "json.gz", "jsonl.gz")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_EXPORT_NAME = re.compile(
    r"(?P<stamp>\d{8}T\d{6}Z)-(?P<resource>alerts|infringements|actions|report)-(?P<job>[A-Za-z0-9_-]{1,64})"
    r"\.(?P<ext>" + "|".join(re.escape(e) for e in EXPORT_EXTENSIONS) + ")"
)
_REPORT_NAME = re.compile(r"(?P<week>\d{4}-\d{2}-\d{2})-executive-report\.html")
# User metadata written with every export file, so its job is known without parsing the key.
METADATA_JOB_ID, METADATA_WORKSPACE_ID, METADATA_RESOURCE_TYPE = "eclipse-job-id", "eclipse-workspace-id", \
    "eclipse-resource-type"

StoredBytesCallback = Callable[[int], None]


def _checked_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError(f"{kind} {value!r} does not match the CONTRACT id pattern")
    return value


@dataclass(frozen=True)
class ParsedKey:
    """What an object key under ``{prefix}/workspaces/`` says about its file.

    ``kind`` is ``export`` (on-demand file: ``job_id``, ``resource_type`` and
    the key's ``stamp`` are set) or ``report`` (scheduled weekly report:
    ``week_start`` is set).
    """

    key: str
    workspace_id: str
    kind: Literal["export", "report"]
    job_id: str | None = None
    resource_type: ResourceType | None = None
    stamp: datetime | None = None
    week_start: date | None = None


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
    return _boto3_session().client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                   config=config)


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
def _boto3_session() -> boto3.session.Session:
    """One boto3 session per process (as ``boto3.client`` uses), with the fast timestamp parser."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
    return boto3.session.Session(botocore_session=session)


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

    ``metadata`` becomes the object's user metadata. ``on_stored(n)`` is
    called with the bytes of every part (or the single put) once S3 holds
    them, and with minus their total when the upload is aborted, so a usage
    counter includes incomplete uploads while they exist.
    """

    def __init__(self, client: Any, bucket: str, key: str, content_type: str,
                 content_disposition: str | None = None, part_bytes: int = PART_BYTES,
                 metadata: dict[str, str] | None = None, on_stored: StoredBytesCallback | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self.key = client, bucket, key
        self._extra: dict[str, Any] = {"ContentType": content_type}
        if content_disposition:
            self._extra["ContentDisposition"] = content_disposition
        if metadata:
            self._extra["Metadata"] = metadata
        self._on_stored = on_stored
        self._stored = 0
        self._stored_lock = threading.Lock()
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
        self._count_stored(len(chunk))
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _count_stored(self, delta: int) -> None:
        with self._stored_lock:
            self._stored += delta
        if self._on_stored is not None and delta:
            self._on_stored(delta)

    def complete(self) -> int:
        """Send what is buffered and finish the object. Returns its size in bytes.

        Raises :class:`UploadAborted` (after aborting) when any part failed.
        """
        if self._finished:
            return self.bytes_written
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=self._bucket, Key=self.key, Body=bytes(self._buffer), **self._extra)
                self._count_stored(len(self._buffer))
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
            self._abort_with_retries()
            self._count_stored(-self._stored)

    def _abort_with_retries(self) -> None:
        """Abort the multipart upload, trying for up to ``ABORT_BUDGET_SECONDS``: an abort usually follows an
        S3 outage, and a part left behind would be billed until the clean-up's hourly pass."""
        deadline, pause = time.monotonic() + ABORT_BUDGET_SECONDS, 1.0
        while True:
            try:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
                return
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if error.get("Code") == "NoSuchUpload":
                    return
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500 \
                        or time.monotonic() + pause > deadline:
                    raise
            except BotoCoreError:
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 10.0)

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

    def workspaces_prefix(self) -> str:
        """``{prefix}/workspaces/`` — every file the project writes lies under it, and nothing else is touched."""
        return self._key("workspaces") + "/"

    def workspace_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/`` — everything of one workspace lies under it."""
        return self._key("workspaces", _checked_id("workspace id", workspace_id)) + "/"

    def exports_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/exports/`` — the on-demand files the quota counts."""
        return self.workspace_prefix(workspace_id) + "exports/"

    def export_key(self, workspace_id: str, resource: ResourceType, job_id: str, extension: str,
                   at: datetime) -> str:
        """Object key of an on-demand export file (CONTRACT section 4).

        ``at`` is the request's moment (its ``createdAt``, else its pick-up
        time), never the run's start, so every run of one job writes the same key.
        """
        stamp = at.astimezone(UTC).strftime(_STAMP_FORMAT)
        if extension not in EXPORT_EXTENSIONS:
            raise ValueError(f"unknown export file extension {extension!r}")
        name = f"{stamp}-{ResourceType(resource).value}-{_checked_id('job id', job_id)}.{extension}"
        return self.workspace_prefix(workspace_id) + "exports/" + name

    def report_key(self, workspace_id: str, week_start: date) -> str:
        """Object key of a scheduled weekly executive report."""
        return self.workspace_prefix(workspace_id) + f"reports/{week_start.isoformat()}-executive-report.html"

    def parse_key(self, key: str) -> ParsedKey | None:
        """The workspace, kind and job of a key written by :meth:`export_key` or :meth:`report_key`.

        ``None`` for anything else (outside ``{prefix}/workspaces/``, an unknown
        folder, a malformed name or id): such a key is never the project's to delete.
        """
        root = self.workspaces_prefix()
        if not key.startswith(root):
            return None
        parts = key[len(root):].split("/")
        if len(parts) != 3 or not ID_RE.fullmatch(parts[0]):
            return None
        workspace_id, folder, name = parts
        if folder == "exports" and (m := _EXPORT_NAME.fullmatch(name)):
            try:
                stamp = datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                return None
            return ParsedKey(key, workspace_id, "export", job_id=m["job"], resource_type=ResourceType(m["resource"]),
                             stamp=stamp)
        if folder == "reports" and (m := _REPORT_NAME.fullmatch(name)):
            try:
                week_start = date.fromisoformat(m["week"])
            except ValueError:
                return None
            return ParsedKey(key, workspace_id, "report", week_start=week_start)
        return None

    @staticmethod
    def export_metadata(workspace_id: str, resource: ResourceType, job_id: str) -> dict[str, str]:
        """User metadata for an export file: its job id, workspace and resource (``x-amz-meta-eclipse-*``)."""
        return {METADATA_JOB_ID: job_id, METADATA_WORKSPACE_ID: workspace_id,
                METADATA_RESOURCE_TYPE: ResourceType(resource).value}

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
                               on_stored=on_stored)

    def presign(self, key: str, expires_in_seconds: int) -> str:
        """A GET URL for ``key`` valid for ``expires_in_seconds`` (at least 1)."""
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

    def delete_keys(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        """Delete up to 1,000 objects in one ``DeleteObjects`` request.

        Returns ``(key, cause)`` for each key S3 refused (the others are gone;
        a key already absent counts as deleted). Raises ``ValueError`` for more
        than 1,000 keys and botocore errors when the request as a whole fails.
        """
        keys = list(keys)
        if len(keys) > MAX_DELETE_KEYS:
            raise ValueError(f"DeleteObjects takes at most {MAX_DELETE_KEYS} keys, not {len(keys)}")
        if not keys:
            return []
        response = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        return [(e.get("Key", ""), f"{e.get('Code', 'Error')}: {e.get('Message', '')}".strip())
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
