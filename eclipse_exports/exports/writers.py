"""File writers: one class per export format behind one small protocol.

A writer takes Arrow record batches with an export schema (``columns.py``)
and writes bytes to a binary sink (a file, a gzip stream, an S3 multipart
upload). It never holds more than the batch it is given.

- CSV: RFC 4180, UTF-8, header row, ``\\n`` line ends (BOM and CRLF when
  Excel-compatible); null is an empty field, an empty string is ``""``; text
  cells starting with ``= + - @`` tab, CR, LF or NUL get a leading ``'``.
- JSON (one array) and JSONL (one object per line): produced by a serializer
  (Polars' JSON writer, straight from Arrow memory), null as ``null``;
  timestamps as ``YYYY-MM-DDTHH:MM:SSZ``. A JSON-object column (``details`` of the audit resources, always
  last) is written as the object its text holds; text that is not a JSON object is written as a JSON string,
  so nothing is lost and the file stays valid.

Timestamps are rendered and formula cells neutralized with vectorized Arrow
kernels, never value by value in Python.
- Parquet: one file, zstd, timestamps as ``timestamp[us, UTC]``.
"""

import io
import json
import struct
from typing import TYPE_CHECKING, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from eclipse_exports.exports.columns import is_json_object
from eclipse_exports.models import ExportFormat

if TYPE_CHECKING:
    import polars as pl

FORMULA_START = r"^[=+\-@\t\r\n\x00]"
UTF8_BOM = b"\xef\xbb\xbf"


def arrow_constant(value: str | int) -> pa.Scalar:
    """``value`` as an Arrow ``string`` or ``int64`` scalar, built from raw buffers.

    Converting a Python value the usual way (``pa.scalar``, ``pa.array``, or a
    literal handed to a compute function) makes pyarrow import pandas, about
    0.3 CPU-s in every run process; no export needs pandas.
    """
    if isinstance(value, int):
        return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(struct.pack("<q", value))])[0]
    data = value.encode("utf-8")
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


SECONDS_PER_DAY = arrow_constant(86_400)
_T, _Z, _QUOTE, _NO_SEPARATOR = (arrow_constant(text) for text in ("T", "Z", "'", ""))
_NEWLINE, _COMMA, _BRACE = (arrow_constant(text) for text in ("\n", ",", "}"))


class ExportWriter(Protocol):
    """What every format writer offers."""

    def write(self, batch: pa.RecordBatch) -> None:
        """Append the batch's rows to the file."""

    def close(self) -> None:
        """Finish the file (footer, closing bracket). Does not close the sink."""


def format_timestamps(column: pa.Array) -> pa.Array:
    """UTC timestamps as ``YYYY-MM-DDTHH:MM:SSZ`` strings (sub-seconds dropped); nulls stay null.

    Built from date and time-of-day casts, about three times faster than ``strftime``.
    """
    seconds = pc.cast(pc.floor_temporal(column, 1, "second"), pa.timestamp("s", tz="UTC"))
    days = pc.cast(seconds, pa.date32())
    day_start = pc.multiply(pc.cast(pc.cast(days, pa.int32()), pa.int64()), SECONDS_PER_DAY)
    of_day = pc.subtract(pc.cast(seconds, pa.int64()), day_start)
    date = pc.cast(days, pa.string())
    time_of_day = pc.cast(pc.cast(of_day, pa.int32()).view(pa.time32("s")), pa.string())
    return pc.binary_join_element_wise(date, _T, time_of_day, _Z, _NO_SEPARATOR)


def _timestamps_as_text(batch: pa.RecordBatch) -> list[pa.Array]:
    return [format_timestamps(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]


def neutralize_formulas(column: pa.Array) -> pa.Array:
    """Prefix ``'`` to text cells a spreadsheet would run as a formula; nulls stay null."""
    risky = pc.match_substring_regex(column, FORMULA_START)
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise(_QUOTE, column, _NO_SEPARATOR), column)


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
        import pyarrow.csv as pa_csv  # only CSV exports need Arrow's CSV writer

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


def _frame(batch: pa.RecordBatch, schema: pa.Schema) -> "pl.DataFrame":
    import polars as pl  # only the JSON writers need it (~50 MB)

    return pl.from_arrow(pa.RecordBatch.from_arrays(_timestamps_as_text(batch), schema=schema))


def _json_value(text: str | None) -> str:
    """A JSON-object column's cell as JSON: the object its text holds, ``null``, or the text as a string."""
    if text is None:
        return "null"
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        # As stored, unless line breaks (pretty-printed JSON) would split a JSONL line.
        return json.dumps(value, ensure_ascii=False) if "\n" in text or "\r" in text else text
    return json.dumps(text, ensure_ascii=False)


def _contiguous(column: pa.Array) -> pa.Buffer:
    """The concatenated values of a string or binary array without nulls, without copying."""
    offsets = column.buffers()[1]
    start, end = (struct.unpack("<i", offsets.slice(4 * (column.offset + i), 4).to_pybytes())[0]
                  for i in (0, len(column)))
    return column.buffers()[2].slice(start, end - start)


def _json_cells(column: pa.Array) -> pa.Array:
    """A JSON-object column's cells as JSON text (``null`` for null).

    As stored when every cell holds one JSON object on one line, which Arrow's JSON reader checks for the
    whole batch at once; otherwise cell by cell (:func:`_json_value`), slower but never invalid.
    """
    import pyarrow.json as pa_json  # only the audit resources need it

    text = column.cast(pa.string())
    present = text.drop_null()
    if len(present) == 0:
        return pc.fill_null(text, arrow_constant("null"))
    if not pc.any(pc.match_substring_regex(present, r"[\r\n]")).as_py():
        try:
            lines = pc.binary_join_element_wise(present, _NEWLINE, _NO_SEPARATOR)
            parsed = pa_json.read_json(io.BytesIO(_contiguous(lines).to_pybytes()))
            if parsed.num_rows == len(present):
                return pc.fill_null(text, arrow_constant("null"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array([_json_value(v) for v in text.to_pylist()], pa.string())


def _json_objects(batch: pa.RecordBatch, schema: pa.Schema, separator: pa.Scalar) -> pa.Buffer:
    """The batch's rows as JSON objects, each followed by ``separator``, as one buffer.

    The columns before a JSON-object last column go through Polars; that column's text is spliced in as the
    object it is (Polars would write it as a string), with Arrow kernels over the whole batch.
    """
    last = schema.field(len(schema) - 1)
    head_schema = pa.schema(list(schema)[:-1])
    buffer = io.BytesIO()
    _frame(batch.select(range(len(head_schema))), head_schema).write_ndjson(buffer)
    heads = pc.utf8_slice_codeunits(pa.array(buffer.getvalue().splitlines(), pa.string()), 0, -1)
    key = arrow_constant("," + json.dumps(last.name) + ":")
    rows = pc.binary_join_element_wise(heads, key, _json_cells(batch.column(len(schema) - 1)), _BRACE, separator,
                                       _NO_SEPARATOR)
    return _contiguous(rows)


def _embeds_json(schema: pa.Schema) -> bool:
    return len(schema) > 1 and is_json_object(schema.field(len(schema) - 1))


class JsonWriter:
    """One JSON array of objects, written a batch at a time."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        self._sink, self._schema, self._first = sink, text_schema(schema), True
        self._embeds_json = _embeds_json(schema)
        sink.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._embeds_json:
            body = _json_objects(batch, self._schema, _COMMA).to_pybytes()[:-1]
        else:
            buffer = io.BytesIO()
            _frame(batch, self._schema).write_json(buffer)
            body = buffer.getvalue().strip()[1:-1]
        self._sink.write(body if self._first else b"," + body)
        self._first = False

    def close(self) -> None:
        self._sink.write(b"]\n")


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        self._sink, self._schema = sink, text_schema(schema)
        self._embeds_json = _embeds_json(schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        if self._embeds_json:
            self._sink.write(_json_objects(batch, self._schema, _NEWLINE))
        else:
            _frame(batch, self._schema).write_ndjson(self._sink)

    def close(self) -> None:
        pass


class ParquetWriter:
    """One Parquet file, zstd-compressed, a row group per batch."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq  # only Parquet exports need it

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


GZIP_CONTENT_TYPE = "application/gzip"


def content_type(fmt: ExportFormat, compression: str = "none") -> str:
    """The ``Content-Type`` a file is served with: a gzip file is ``application/gzip`` whatever it holds
    (browsers and tools then keep the ``.gz`` name and do not unpack it behind the user's back)."""
    return GZIP_CONTENT_TYPE if compression == "gzip" else CONTENT_TYPES[ExportFormat(fmt)]


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
