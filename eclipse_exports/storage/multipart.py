"""Streaming multipart uploads: bytes written in, one S3 object out, aborted on any failure."""

import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

PART_BYTES = 5 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 2
# How long an abort keeps trying through an S3 outage (each try is botocore's 5 attempts).
ABORT_BUDGET_SECONDS = 60.0

StoredBytesCallback = Callable[[int], None]


class UploadAborted(RuntimeError):
    """A multipart upload failed and was aborted; no parts are left behind."""


class _PartBody(io.RawIOBase):
    """One part's bytes for ``UploadPart``, read in place from its buffer: a seekable read-only stream (botocore
    seeks back to send a part again when a try failed)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._position = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:  # type: ignore[override]
        count = max(0, min(len(target), len(self._view) - self._position))
        target[:count] = self._view[self._position:self._position + count]
        self._position += count
        return count

    def readall(self) -> bytes:
        rest = bytes(self._view[self._position:])
        self._position = len(self._view)
        return rest

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return len(self._view)


class MultipartUpload(io.RawIOBase):
    """A write-only binary stream that lands in S3 as one object.

    Bytes are buffered up to ``part_bytes`` (default 5 MiB, S3's minimum) and sent as parts,
    at most ``MAX_PARTS_IN_FLIGHT`` at a time in background threads. The part buffers
    (``MAX_PARTS_IN_FLIGHT + 1`` at most) are allocated once and reused, and each part is
    sent from its buffer without a copy, so memory stays near ``part_bytes * (MAX_PARTS_IN_FLIGHT + 1)``
    whatever the file size (a 5 MiB block allocated and freed per part left the allocator holding freed
    parts: peaks higher and wandering more from run to run, docs/benchmarks.md).
    A file smaller than one part is sent with a single ``PutObject``.
    :meth:`complete` finishes the object; :meth:`abort` (or leaving a ``with``
    block on an exception) removes every uploaded part. :attr:`sha256` is the
    hex SHA-256 of every byte written, computed on the way through (the
    object's verification compares it with a digest of what S3 returns).

    ``metadata`` becomes the object's user metadata. ``on_stored(n)`` is
    called with the bytes of every part (or the single put) once S3 holds
    them, and with minus their total when the upload is aborted, so a usage
    counter includes incomplete uploads while they exist. ``encryption`` (the server-side encryption's
    ``ServerSideEncryption``/``SSEKMSKeyId`` arguments) goes on the ``PutObject`` or the
    ``CreateMultipartUpload``, whose parts S3 encrypts alike.
    """

    def __init__(self, client: Any, bucket: str, key: str, content_type: str,
                 content_disposition: str | None = None, part_bytes: int = PART_BYTES,
                 metadata: dict[str, str] | None = None, on_stored: StoredBytesCallback | None = None,
                 encryption: dict[str, str] | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self.key = client, bucket, key
        self._extra: dict[str, Any] = {"ContentType": content_type, **(encryption or {})}
        if content_disposition:
            self._extra["ContentDisposition"] = content_disposition
        if metadata:
            self._extra["Metadata"] = metadata
        self._on_stored = on_stored
        self._stored = 0
        self._stored_lock = threading.Lock()
        self._part_bytes = part_bytes
        self._buffer: bytearray | None = None  # the part being filled: ``_filled`` bytes so far
        self._filled = 0
        self._free_buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffers_made = 0
        self._upload_id: str | None = None
        self._parts: list[Future] = []
        self._pool: ThreadPoolExecutor | None = None
        self.bytes_written = 0
        self._digest = hashlib.sha256()
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a finished upload")
        view = memoryview(data).cast("B")
        size = view.nbytes
        self._digest.update(view)
        self.bytes_written += size
        while view:
            if self._buffer is None:
                self._buffer = self._take_buffer()
            count = min(view.nbytes, self._part_bytes - self._filled)
            self._buffer[self._filled:self._filled + count] = view[:count]
            self._filled += count
            view = view[count:]
            if self._filled == self._part_bytes:
                self._send_part(self._buffer, self._filled)
                self._buffer, self._filled = None, 0
        return size

    def _take_buffer(self) -> bytearray:
        """A part buffer: a new one while fewer than ``MAX_PARTS_IN_FLIGHT + 1`` exist, else the next one a sent
        part gives back (waiting for it: that is what holds the writer to the uploads' pace). A new buffer starts
        empty and grows as :meth:`write` fills it, so a small file (a report's page) takes its own size, not
        ``part_bytes``; a reused one is ``part_bytes`` long and is filled in place."""
        try:
            return self._free_buffers.get_nowait()
        except queue.Empty:
            if self._buffers_made <= MAX_PARTS_IN_FLIGHT:
                self._buffers_made += 1
                return bytearray()
            return self._free_buffers.get()

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far (of the whole object once complete)."""
        return self._digest.hexdigest()

    def _send_part(self, buffer: bytearray, size: int) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self.key, **self._extra)[
                "UploadId"
            ]
            self._pool = ThreadPoolExecutor(max_workers=MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        number = len(self._parts) + 1
        assert self._pool is not None
        self._parts.append(self._pool.submit(self._upload_part, number, buffer, size))

    def _upload_part(self, number: int, buffer: bytearray, size: int) -> dict:
        try:
            with memoryview(buffer) as whole:
                response = self._client.upload_part(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id,
                                                    PartNumber=number, Body=_PartBody(whole[:size]))
        finally:
            self._free_buffers.put(buffer)
        self._count_stored(size)
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
                body = bytes(self._buffer[:self._filled]) if self._buffer is not None else b""
                self._client.put_object(Bucket=self._bucket, Key=self.key, Body=body, **self._extra)
                self._count_stored(len(body))
            else:
                if self._filled:
                    assert self._buffer is not None
                    self._send_part(self._buffer, self._filled)
                parts = [f.result() for f in self._parts]
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
                )
        except Exception as exc:
            self.abort()
            raise UploadAborted(f"upload of {self.key} failed: {exc}") from exc
        self._buffer, self._filled = None, 0
        self._finished = True
        self._shutdown()
        return self.bytes_written

    def abort(self) -> None:
        """Stop the upload and delete every part already sent. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        self._buffer, self._filled = None, 0
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
            try:
                self.abort()
            except Exception as abort_error:  # noqa: BLE001 - the error that ended the upload stays the one raised
                if exc is not None:  # the clean-up's own error goes to the run log (assets/exports.py)
                    exc.add_note(f"while aborting the upload after it: {type(abort_error).__name__}: {abort_error}")
        super().close()


