"""File writers: one class per export format behind one small protocol.

A writer takes Arrow record batches with an export schema (``columns.py``)
and writes bytes to a binary sink (a file, a gzip stream, an S3 multipart
upload). It never holds more than the batch it is given.

- CSV: RFC 4180, UTF-8, header row, ``\\n`` line ends (BOM and CRLF when
  Excel-compatible); null is an empty field, an empty string is ``""``; text
  cells starting with ``= + - @`` tab, CR, LF or NUL get a leading ``'``.
- JSON (one array) and JSONL (one object per line): produced by a serializer
  (orjson), null as ``null``; timestamps as ``YYYY-MM-DDTHH:MM:SSZ``.
- Parquet: one file, zstd, timestamps as ``timestamp[us, UTC]``.
"""

from typing import BinaryIO, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from eclipse_exports.models import ExportFormat

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FORMULA_PREFIX = r"^[=+\-@\t\r\n\x00]"
UTF8_BOM = b"\xef\xbb\xbf"


class ExportWriter(Protocol):
    """What every format writer offers."""

    def write(self, batch: pa.RecordBatch) -> None:
        """Append the batch's rows to the file."""

    def close(self) -> None:
        """Finish the file (footer, closing bracket). Does not close the sink."""


def _timestamps_as_text(batch: pa.RecordBatch) -> list[pa.Array]:
    columns = []
    for column in batch.columns:
        if pa.types.is_timestamp(column.type):
            seconds = pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False)
            column = pc.strftime(seconds, format=TIMESTAMP_FORMAT)
        columns.append(column)
    return columns


def neutralize_formulas(column: pa.Array) -> pa.Array:
    """Prefix ``'`` to text cells a spreadsheet would run as a formula; nulls stay null."""
    risky = pc.match_substring_regex(column, FORMULA_PREFIX)
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)


def text_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with timestamp fields turned into strings (CSV and JSON rendering)."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in schema])


class CsvWriter:
    """RFC 4180 CSV via Arrow's C++ writer; see the module docstring for the rules."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema, excel_compatible: bool = False) -> None:
        self._text_columns = [pa.types.is_string(f.type) for f in schema]
        self._schema = text_schema(schema)
        if excel_compatible:
            sink.write(UTF8_BOM)
        options = pa_csv.WriteOptions(include_header=True, eol="\r\n" if excel_compatible else "\n")
        self._writer = pa_csv.CSVWriter(sink, self._schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [
            neutralize_formulas(col) if is_text else col
            for col, is_text in zip(_timestamps_as_text(batch), self._text_columns, strict=True)
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _rows(batch: pa.RecordBatch, schema: pa.Schema) -> list[dict]:
    return pa.RecordBatch.from_arrays(_timestamps_as_text(batch), schema=schema).to_pylist()


class JsonWriter:
    """One JSON array of objects, written a batch at a time."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        self._sink, self._schema, self._first = sink, text_schema(schema), True
        sink.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        body = orjson.dumps(_rows(batch, self._schema))[1:-1]
        self._sink.write(body if self._first else b"," + body)
        self._first = False

    def close(self) -> None:
        self._sink.write(b"]\n")


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        self._sink, self._schema = sink, text_schema(schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._sink.write(b"\n".join(map(orjson.dumps, _rows(batch, self._schema))) + b"\n")

    def close(self) -> None:
        pass


class ParquetWriter:
    """One Parquet file, zstd-compressed, a row group per batch."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.HTML: "text/html; charset=utf-8",
}


def open_writer(fmt: ExportFormat, sink: BinaryIO, schema: pa.Schema, excel_compatible: bool = False) -> ExportWriter:
    """The writer for ``fmt`` over ``sink``. Raises ``ValueError`` for ``html``."""
    fmt = ExportFormat(fmt)
    if fmt is ExportFormat.CSV:
        return CsvWriter(sink, schema, excel_compatible)
    if fmt is ExportFormat.JSON:
        return JsonWriter(sink, schema)
    if fmt is ExportFormat.JSONL:
        return JsonlWriter(sink, schema)
    if fmt is ExportFormat.PARQUET:
        return ParquetWriter(sink, schema)
    raise ValueError(f"no row writer for format '{fmt.value}'")
