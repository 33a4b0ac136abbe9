"""Is the object in S3 the file that was written, whole and readable? One streamed read answers.

:func:`verify_export_file` GETs a stored export once, as a stream, and in that
one pass checks two things:

- **integrity**: the object exists, its size equals the bytes uploaded, and
  its SHA-256 equals the digest computed while uploading
  (:attr:`eclipse_exports.storage.client.MultipartUpload.sha256`); its content type
  is the one it was uploaded with;
- **content**: it parses in its format (CSV, JSON, JSONL, each optionally
  gzip; Parquet; HTML) with exactly the export's columns, and holds as many
  rows as the export's snapshot counted (for an HTML report, the listed rows
  marked ``data-row``).

Memory stays flat whatever the size: text formats are parsed as the bytes
arrive; Parquet, which needs its footer before its rows, is spooled to a
temporary file (disk, not memory) while it is hashed, then read one row group
at a time (the export's writer makes one per batch, about 2 MiB). Problems
with the file are findings, never exceptions; only a failure to reach S3
raises (it says nothing about the file).
"""

import gzip
import hashlib
import io
import json
import re
import tempfile
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, BinaryIO

import pyarrow as pa

from eclipse_exports.models import ExportFormat
from eclipse_exports.storage.client import ExportStorage, ObjectMissing

READ_BYTES = 1024 * 1024
MAX_JSON_ITEM_CHARS = 16 * 1024 * 1024
REPORT_ROW_ATTRIBUTE = "data-row"


@dataclass(frozen=True)
class ExpectedFile:
    """What an export wrote, as recorded while writing it.

    ``byte_size`` and ``sha256`` (hex) come from the upload stream,
    ``row_count`` from the export's snapshot (the count taken before
    streaming; for a report, the rows it lists), ``columns`` from the
    resource's export schema (empty for HTML). ``content_type`` is checked
    when given.
    """

    key: str
    format: ExportFormat
    compressed: bool
    byte_size: int
    sha256: str
    row_count: int
    columns: tuple[str, ...] = ()
    content_type: str | None = None

    @property
    def label(self) -> str:
        """The format as a reader names it: ``CSV``, ``gzip-compressed JSONL``…"""
        name = ExportFormat(self.format).value.upper()
        return f"gzip-compressed {name}" if self.compressed else name


@dataclass(frozen=True)
class FileVerification:
    """The outcome of :func:`verify_export_file`.

    ``stored_bytes``/``stored_sha256`` are ``None`` when there was no object;
    ``rows_read`` is ``None`` when the file could not be parsed to its end.
    Each problem is one readable sentence naming the cause.
    """

    expected: ExpectedFile
    stored_bytes: int | None
    stored_sha256: str | None
    rows_read: int | None
    integrity_problems: tuple[str, ...]
    content_problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        """The object exists and is byte for byte what was uploaded."""
        return not self.integrity_problems

    @property
    def readable(self) -> bool:
        """The object parses in its format and holds every row of the snapshot."""
        return not self.content_problems

    @property
    def passed(self) -> bool:
        """Both :attr:`intact` and :attr:`readable`."""
        return self.intact and self.readable

    def summary(self) -> str:
        """One line: every problem, or what was confirmed."""
        problems = self.integrity_problems + self.content_problems
        if problems:
            return "; ".join(problems)
        return (f"{self.stored_bytes:,} bytes, SHA-256 as uploaded; parses as {self.expected.label} "
                f"with all {self.rows_read:,} rows")


def verify_export_file(storage: ExportStorage, expected: ExpectedFile) -> FileVerification:
    """Read ``expected.key`` back from ``storage`` and compare it with ``expected`` (see the module docstring).

    Raises botocore's errors when S3 cannot be reached or the read breaks
    off; every problem of the file itself is reported in the result.
    """
    try:
        stored = storage.open_object(expected.key)
    except ObjectMissing:
        missing = f"no object at key {expected.key}"
        return FileVerification(expected, None, None, None, (missing,), ("there is no file to read",))
    reader = _DigestingReader(stored.body)
    rows: int | None = None
    content: list[str] = []
    try:
        try:
            rows = _count_rows(io.BufferedReader(reader, READ_BYTES), expected)
        except _UNREADABLE as exc:
            if reader.failure is not None:
                raise reader.failure from None
            content.append(f"does not parse as {expected.label}: {_one_line(exc)}")
        reader.drain()
    finally:
        stored.body.close()
    integrity = []
    if reader.size != expected.byte_size:
        integrity.append(f"stored object is {reader.size:,} bytes, the upload wrote {expected.byte_size:,}")
    if reader.sha256 != expected.sha256:
        integrity.append(f"SHA-256 of the stored object ({reader.sha256[:16]}…) differs from the one computed "
                         f"while uploading ({expected.sha256[:16]}…)")
    if expected.content_type and stored.content_type != expected.content_type:
        integrity.append(f"served as '{stored.content_type}', uploaded as '{expected.content_type}'")
    if (unencrypted := storage.sse.matches(stored.encryption)) is not None:
        integrity.append(unencrypted)
    if rows is not None and rows != expected.row_count:
        content.append(f"holds {rows:,} rows; the export's snapshot counted {expected.row_count:,}")
    return FileVerification(expected, reader.size, reader.sha256, rows, tuple(integrity), tuple(content))


class _Unreadable(ValueError):
    """The file is not a well-formed file of its format."""


_UNREADABLE = (_Unreadable, pa.ArrowException, ValueError, EOFError, OSError, zlib.error, RecursionError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


class _DigestingReader(io.RawIOBase):
    """A readable stream over a botocore body that hashes and counts every byte as it passes."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body
        self._digest = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            # Remembered so a broken connection is not mistaken for a broken file by the parser's error.
            self.failure = exc
            raise
        n = len(data)
        buffer[:n] = data
        self._digest.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        """Read (and hash) whatever the parser left unread."""
        while chunk := self._body.read(READ_BYTES):
            self._digest.update(chunk)
            self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def _count_rows(stream: BinaryIO, expected: ExpectedFile) -> int:
    fmt = ExportFormat(expected.format)
    if fmt is ExportFormat.PARQUET:
        return _parquet_rows(stream, expected.columns)
    content: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if expected.compressed else stream  # type: ignore[assignment]
    if fmt is ExportFormat.CSV:
        return _csv_rows(content, expected.columns)
    if fmt is ExportFormat.JSON:
        return _JsonArrayRows(content, expected.columns).count()
    if fmt is ExportFormat.JSONL:
        return _jsonl_rows(content, expected.columns)
    return _html_rows(content)


def _check_columns(found: list[str], columns: tuple[str, ...], where: str) -> None:
    if columns and tuple(found) != columns:
        raise _Unreadable(f"{where} has columns {', '.join(found)}; expected {', '.join(columns)}")


def _csv_rows(stream: BinaryIO, columns: tuple[str, ...]) -> int:
    import pyarrow.csv as pa_csv  # only CSV files need Arrow's CSV reader; the code location loads without it

    # Every column read as text: the check is that the file is well-formed CSV, not what the cells hold.
    # One block at a time: with threads, Arrow parses blocks ahead, and more of them the busier the machine.
    reader = pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(block_size=READ_BYTES, use_threads=False),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in columns}),
    )
    _check_columns(reader.schema.names, columns, "the header")
    return sum(batch.num_rows for batch in reader)


def _jsonl_rows(stream: BinaryIO, columns: tuple[str, ...]) -> int:
    rows = 0
    for rows, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8", newline="\n"), start=1):  # noqa: B007
        item = json.loads(line)
        if not isinstance(item, dict):
            raise _Unreadable(f"line {rows:,} is not a JSON object")
        _check_columns(list(item), columns, f"line {rows:,}")
    return rows


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _JsonArrayRows:
    """Counts the objects of one JSON array read as a stream, holding one object at a time."""

    def __init__(self, stream: BinaryIO, columns: tuple[str, ...]) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        self._columns = columns
        self._buffer, self._pos, self._eof = "", 0, False

    def _more(self) -> bool:
        chunk = self._text.read(READ_BYTES)
        if not chunk:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos:] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        """The next character that is not whitespace, '' at the end of the file."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._more():
                return ""

    def _item(self) -> object:
        while True:
            try:
                item, self._pos = _DECODER.raw_decode(self._buffer, self._pos)
                return item
            except json.JSONDecodeError:
                # Usually the item goes on in the next chunk; a broken file shows at its end.
                if len(self._buffer) - self._pos > MAX_JSON_ITEM_CHARS or not self._more():
                    raise

    def count(self) -> int:
        if self._peek() != "[":
            raise _Unreadable("the file does not start with '['")
        self._pos += 1
        rows = 0
        if self._peek() == "]":
            self._pos += 1
        else:
            while True:
                self._peek()
                item = self._item()
                rows += 1
                if not isinstance(item, dict):
                    raise _Unreadable(f"item {rows:,} is not a JSON object")
                _check_columns(list(item), self._columns, f"item {rows:,}")
                after = self._peek()
                self._pos += 1
                if after == "]":
                    break
                if after != ",":
                    raise _Unreadable(f"the array ends after item {rows:,} without its closing ']'"
                                      if not after else f"unexpected {after!r} after item {rows:,}")
        if self._peek():
            raise _Unreadable("data after the array's closing ']'")
        return rows


def _parquet_rows(stream: BinaryIO, columns: tuple[str, ...]) -> int:
    import pyarrow.parquet as pq  # only Parquet files need it; the code location loads without it

    with tempfile.TemporaryFile(prefix="eclipse-verify-") as spool:
        while chunk := stream.read(READ_BYTES):
            spool.write(chunk)
        spool.seek(0)
        parquet = pq.ParquetFile(spool, pre_buffer=False, buffer_size=READ_BYTES)
        _check_columns(parquet.schema_arrow.names, columns, "the schema")
        # One row group at a time, unthreaded: iter_batches reads ahead and its memory grows with the file.
        rows = sum(parquet.read_row_group(i, use_threads=False).num_rows for i in range(parquet.num_row_groups))
        if rows != parquet.metadata.num_rows:
            raise _Unreadable(f"the footer says {parquet.metadata.num_rows:,} rows, the row groups hold {rows:,}")
        return rows


class _ReportRows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = False
        self.closed = False
        self.rows = 0

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr" and any(name == REPORT_ROW_ATTRIBUTE for name, _ in attrs):
            self.rows += 1

    def handle_endtag(self, tag: str) -> None:
        self.closed = self.closed or tag == "html"


def _html_rows(stream: BinaryIO) -> int:
    parser = _ReportRows()
    text = io.TextIOWrapper(stream, encoding="utf-8")
    while chunk := text.read(READ_BYTES):
        parser.feed(chunk)
    parser.close()
    if not parser.doctype:
        raise _Unreadable("no <!DOCTYPE html> declaration")
    if not parser.closed:
        raise _Unreadable("the document ends before its closing </html>")
    return parser.rows
