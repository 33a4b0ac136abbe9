"""Writers round-trip: what each format writes reads back as exactly the source rows."""

import gzip
import io

import pyarrow as pa
import pytest

from eclipse_exports.exports.columns import export_schema
from eclipse_exports.exports.writers import neutralize_formulas, open_writer
from eclipse_exports.models import ResourceType
from tests.dataset import expected_rows
from tests.readback import expected_for, read_rows

FORMATS = ["csv", "json", "jsonl", "parquet"]


def write(rows: list[dict], resource: str, fmt: str, batch: int = 64, gzipped: bool = False,
          excel: bool = False) -> bytes:
    schema = export_schema(ResourceType(resource))
    buf = io.BytesIO()
    sink = gzip.GzipFile(fileobj=buf, mode="wb") if gzipped else buf
    writer = open_writer(fmt, sink, schema, excel)
    for start in range(0, max(len(rows), 1), batch):
        writer.write(pa.RecordBatch.from_pylist(rows[start:start + batch], schema=schema))
    writer.close()
    if gzipped:
        sink.close()
    return buf.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("resource", ["alerts", "infringements", "actions"])
def test_round_trip(resource, fmt):
    rows = expected_rows(resource, "ws_a")
    assert len(rows) > 100
    assert read_rows(write(rows, resource, fmt), fmt) == expected_for(rows, fmt)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_gzip_round_trip(fmt):
    rows = expected_rows("alerts", "ws_b")
    data = write(rows, "alerts", fmt, gzipped=True)
    assert data[:2] == b"\x1f\x8b"
    assert read_rows(data, fmt, gzipped=True) == expected_for(rows, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_export_is_a_valid_file(fmt):
    data = write([], "alerts", fmt)
    assert read_rows(data, fmt) == []
    if fmt == "csv":
        assert data == b'"id","title","url","brand","severity","status","detected_at","monitor_source"\n'


def test_csv_header_order_nulls_and_line_ends():
    rows = [{"id": "a1", "title": "", "url": None, "brand": "B", "severity": "low", "status": "new",
             "detected_at": None, "monitor_source": "line\nbreak"}]
    data = write(rows, "alerts", "csv")
    assert data.splitlines()[0] == b'"id","title","url","brand","severity","status","detected_at","monitor_source"'
    assert data.endswith(b'"a1","",,"B","low","new",,"line\nbreak"\n')
    assert b"\r\n" not in data


def test_excel_compatible_csv_has_bom_and_crlf():
    rows = expected_rows("alerts", "ws_a")[:20]
    data = write(rows, "alerts", "csv", excel=True)
    assert data.startswith(b"\xef\xbb\xbf\"id\"")
    assert data.count(b"\r\n") >= 21
    assert read_rows(data, "csv") == expected_for(rows, "csv")


def test_formula_neutralization_only_touches_risky_text():
    column = pa.array(["=1+1", "+1", "-1", "@a", "\tx", "\rx", "\nx", "\x00x", "ok", "1-2", "", None])
    assert neutralize_formulas(column).to_pylist() == [
        "'=1+1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "'\nx", "'\x00x", "ok", "1-2", "", None]


def test_action_count_is_a_json_number_and_parquet_keeps_types():
    rows = expected_rows("infringements", "ws_a")
    assert isinstance(read_rows(write(rows, "infringements", "json"), "json")[0]["action_count"], int)
    import pyarrow.parquet as pq
    schema = pq.read_schema(io.BytesIO(write(rows, "infringements", "parquet")))
    assert schema.field("detected_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("action_count").type == pa.int64()


def test_timestamps_render_as_utc_seconds_in_text_formats():
    from datetime import UTC, datetime

    from eclipse_exports.exports.writers import format_timestamps

    values = [datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC), None,
              datetime(1900, 1, 1, 12, 30, 5, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    rendered = format_timestamps(pa.array(values, pa.timestamp("us", tz="UTC"))).to_pylist()
    assert rendered == ["1969-12-31T23:59:59Z", "2026-02-28T00:00:00Z", None, "1900-01-01T12:30:05Z",
                        "9999-12-31T23:59:59Z"]


def test_parquet_is_zstd_compressed():
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(io.BytesIO(write(expected_rows("alerts", "ws_a"), "alerts", "parquet"))).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
