"""Read an exported file back into rows, and render expected rows the way each format must show them."""

import csv
import gzip
import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

RISKY = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_text_format(rows: list[dict], csv_cells: bool) -> list[dict]:
    """Expected rows as CSV (strings, formula-neutralized text) or JSON (timestamps as strings) shows them."""
    out = []
    for row in rows:
        shown = {}
        for key, value in row.items():
            if isinstance(value, datetime):
                shown[key] = _ts(value)
            elif csv_cells and isinstance(value, str) and value.startswith(RISKY):
                shown[key] = "'" + value
            elif csv_cells and isinstance(value, int):
                shown[key] = str(value)
            else:
                shown[key] = value
        out.append(shown)
    return out


def read_rows(data: bytes, fmt: str, gzipped: bool = False) -> list[dict]:
    """Parse an export file; CSV cells come back as strings (null for an unquoted empty field)."""
    if gzipped:
        data = gzip.decompress(data)
    if fmt == "csv":
        body = data.removeprefix(b"\xef\xbb\xbf")
        header = next(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(block_size=1 << 26),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )
        return table.to_pylist()
    if fmt == "json":
        return json.loads(data)
    if fmt == "jsonl":
        return [json.loads(line) for line in data.split(b"\n") if line]
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    raise ValueError(fmt)


def expected_for(rows: list[dict], fmt: str) -> list[dict]:
    """Expected rows as the given format reads back."""
    if fmt == "csv":
        return as_text_format(rows, csv_cells=True)
    if fmt in ("json", "jsonl"):
        return as_text_format(rows, csv_cells=False)
    return rows
