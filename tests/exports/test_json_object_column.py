"""The audit resources' ``details`` column: a JSON object in JSON and JSONL, its text in CSV and Parquet; text
that is not one object on one line is still written validly, and nothing is dropped."""

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from eclipse_exports.exports.columns import export_schema
from eclipse_exports.exports.writers import open_writer
from eclipse_exports.models import ResourceType
from tests.readback import read_rows

SCHEMA = export_schema(ResourceType.AUDIT_LOGS)
DETAILS = ['{"role": "admin", "n": [1, 2], "s": "é \\u2028"}', None, "not json", '{\n  "pretty": true\n}',
           '{"role": 5}', "[1, 2]", '{"a": 1} trailing', "=HYPERLINK(1)"]


def batch(details: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([
        {"id": f"aud_{n}", "occurred_at": datetime(2026, 11, 2, 10, n, tzinfo=UTC), "actor_email": None,
         "action": "member.added", "target_type": "user", "target_id": None, "ip_address": None, "user_agent": None,
         "details": text} for n, text in enumerate(details)], schema=SCHEMA)


def expected(text):
    """An object stays the object; anything else is kept as its text (a JSON string), null as null."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("details", [DETAILS[:1], DETAILS[:2], DETAILS, [None, None]], ids=["one", "null", "every",
                                                                                           "all-null"])
def test_details_are_objects_in_json_formats(fmt, details):
    sink = io.BytesIO()
    writer = open_writer(fmt, sink, SCHEMA)
    writer.write(batch(details))
    writer.write(batch(details).slice(1))
    writer.close()
    rows = read_rows(sink.getvalue(), fmt)
    assert [r["details"] for r in rows] == [expected(t) for t in details + details[1:]]
    assert [r["id"] for r in rows] == [f"aud_{n}" for n in range(len(details))] + \
        [f"aud_{n}" for n in range(1, len(details))]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_details_are_their_text_in_csv_and_parquet(fmt):
    sink = io.BytesIO()
    writer = open_writer(fmt, sink, SCHEMA)
    writer.write(batch(DETAILS))
    writer.close()
    shown = [r["details"] for r in read_rows(sink.getvalue(), fmt)]
    if fmt == "csv":  # formula-safe, like any text cell
        assert shown == DETAILS[:-1] + ["'=HYPERLINK(1)"]
    else:
        assert shown == DETAILS
