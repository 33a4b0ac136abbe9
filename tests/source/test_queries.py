"""Query builders: workspace scoping, every filter, the interface's order — on SQLite and PostgreSQL."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql

from eclipse_exports.exports.columns import export_schema
from eclipse_exports.models import ExportFilters, ResourceType
from eclipse_exports.source.queries import count_query, export_query
from eclipse_exports.source.reader import export_snapshot
from tests.dataset import expected_rows

FROM, TO = datetime(2026, 10, 10, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)

CASES = [
    ("alerts", {}),
    ("alerts", {"severity": ["high", "critical"]}),
    ("alerts", {"status": ["new", "dismissed"]}),
    ("alerts", {"brand": ['Alpha, "Pay"']}),
    ("alerts", {"date_from": FROM}),
    ("alerts", {"date_to": TO}),
    ("alerts", {"severity": ["low"], "status": ["resolved"], "brand": ["Alpha"], "date_from": FROM, "date_to": TO}),
    ("infringements", {}),
    ("infringements", {"severity": ["medium"], "status": ["open", "rejected"], "brand": ["Alpha"]}),
    ("infringements", {"date_from": FROM, "date_to": TO}),
    ("actions", {}),
    ("actions", {"status": ["completed"], "date_from": FROM, "date_to": TO}),
]


def _read(engine, resource, workspace, filters):
    schema = export_schema(ResourceType(resource))
    with export_snapshot(engine) as snapshot:
        total = snapshot.count(count_query(ResourceType(resource), workspace, filters))
        query = export_query(ResourceType(resource), workspace, filters)
        rows = [r for b in snapshot.record_batches(query, schema, batch_rows=37) for r in b.to_pylist()]
    return total, rows


@pytest.mark.parametrize("resource, filters", CASES)
@pytest.mark.parametrize("workspace", ["ws_a", "ws_b"])
def test_query_returns_exactly_the_expected_rows(source, resource, filters, workspace):
    f = ExportFilters(**{("from" if k == "date_from" else "to" if k == "date_to" else k): v
                         for k, v in filters.items()})
    total, rows = _read(source, resource, workspace, f)
    expected = expected_rows(resource, workspace, **filters)
    assert rows == expected
    assert total == len(expected)
    prefix = {"alerts": "alt", "infringements": "inf", "actions": "act"}[resource]
    assert all(r["id"].startswith(f"{prefix}_{workspace}_") for r in rows)


def test_filter_values_are_bound_parameters_not_sql_text():
    hostile = "x' OR '1'='1"
    query = export_query(ResourceType.ALERTS, "ws_a", ExportFilters(brand=[hostile], status=["new"]))
    sql = str(query.compile(dialect=postgresql.dialect()))
    assert hostile not in sql and "ws_a" not in sql
    assert "workspace_id = %(workspace_id_1)s" in sql


def test_sql_metacharacters_in_filters_match_nothing_and_break_nothing(source):
    total, rows = _read(source, "alerts", "ws_a", ExportFilters(brand=["Alpha' OR '1'='1", "%", "Alpha\\"]))
    assert (total, rows) == (0, [])
