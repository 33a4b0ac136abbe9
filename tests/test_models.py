"""The request model is the gate: every docs/interface.md section 2 rule, good and bad."""

import json

import pytest

from eclipse_exports.models import ExportRequest, InvalidRequest

GOOD = {"id": "job_1", "workspaceId": "ws_acme", "userId": "usr_acme_analyst", "resourceType": "alerts",
        "format": "csv"}


def parse(**changes) -> ExportRequest:
    payload = {**GOOD, **changes}
    return ExportRequest.from_payload(json.dumps({k: v for k, v in payload.items() if v is not ...}))


@pytest.mark.parametrize("changes", [
    {},
    {"id": "a" * 64},
    {"id": "3f2c9a1e-0b7d-4c55-9a77-2f8d1c3b4e5f"},
    {"resourceType": "infringements", "format": "json"},
    {"resourceType": "actions", "format": "jsonl", "filters": {"status": ["pending", "failed"]}},
    {"resourceType": "report", "format": "html"},
    {"format": "parquet"},
    {"filters": {"severity": ["high", "critical"], "status": ["new"], "brand": ["Acme", 'Acme "Pay"']}},
    {"filters": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00+02:00"}},
    {"options": {"compression": "gzip", "excelCompatible": True}},
    {"format": "jsonl", "options": {"compression": "gzip"}},
    {"delivery": "email", "createdAt": "2026-11-29T10:00:00Z"},
])
def test_valid_requests(changes):
    request = parse(**changes)
    assert request.id == changes.get("id", "job_1")
    assert ExportRequest.from_payload(request.to_payload()) == request


@pytest.mark.parametrize("changes, reason", [
    ({"id": ...}, "id: Field required"),
    ({"id": ""}, "id: String should match pattern"),
    ({"id": "a" * 65}, "id: String should match pattern"),
    ({"id": "../../etc"}, "id: String should match pattern"),
    ({"id": 7}, "id: Input should be a valid string"),
    ({"workspaceId": "ws acme"}, "workspaceId: String should match pattern"),
    ({"userId": ...}, "userId: Field required"),
    ({"resourceType": "users"}, "resourceType: Input should be"),
    ({"format": "xlsx"}, "format: Input should be"),
    ({"format": "html"}, "alerts export as 'csv', 'json', 'jsonl' or 'parquet'"),
    ({"resourceType": "report", "format": "csv"}, "a report is exported as 'html' only"),
    ({"resourceType": "actions", "filters": {"severity": ["high"]}}, "filter 'severity' applies to alerts"),
    ({"resourceType": "actions", "filters": {"brand": ["Acme"]}}, "filter 'brand' applies to alerts"),
    ({"filters": {"status": ["open"]}}, "filter 'status' has 'open'"),
    ({"resourceType": "report", "format": "html", "filters": {"status": ["new"]}}, "does not apply to report"),
    ({"filters": {"severity": ["urgent"]}}, "filters.severity.0: Input should be"),
    ({"filters": {"severity": "high"}}, "filters.severity: Input should be a valid array"),
    ({"filters": {"severity": ["low"] * 101}}, "filters.severity: List should have at most 100 items"),
    ({"filters": {"brand": [""]}}, "filters.brand.0: String should have at least 1 character"),
    ({"filters": {"from": "2026-11-01T00:00:00"}}, "filters.from: Input should have timezone info"),
    ({"filters": {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}}, "'from' must be earlier"),
    ({"filters": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}}, "'from' must be earlier"),
    ({"filters": {"since": "2026-11-01T00:00:00Z"}}, "filters.since: unknown field"),
    ({"options": {"compression": "zip"}}, "options.compression: Input should be"),
    ({"format": "parquet", "options": {"compression": "gzip"}}, "not available for 'parquet'"),
    ({"format": "json", "options": {"excelCompatible": True}}, "'excelCompatible' applies to 'csv' only"),
    ({"options": {"excelCompatible": "yes"}}, "options.excelCompatible: Input should be a valid boolean"),
    ({"delivery": "fax"}, "delivery: Input should be"),
    ({"email": "attacker@evil.example"}, "email: unknown field"),
])
def test_invalid_requests_say_why(changes, reason):
    with pytest.raises(InvalidRequest) as info:
        parse(**changes)
    assert reason in str(info.value)


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe not utf-8", "payload is not UTF-8"),
    (b"not json", "Invalid JSON"),
    (b"[1, 2]", "Input should be an object"),
    (b"null", "Input should be an object"),
    (b"[" * 10_000 + b"]" * 10_000, "recursion limit"),
    (b'{"id": "' + b"a" * 70_000 + b'"}', "the limit is 65536"),
    (json.dumps(GOOD).encode()[:-1] + b', "id": "job-2"}', "payload names 'id' twice"),
    (json.dumps({**GOOD, "filters": {"severity": ["low"]}}).encode()[:-2] + b', "severity": ["high"]}}',
     "payload names 'severity' twice"),
])
def test_malformed_payloads(raw, reason):
    with pytest.raises(InvalidRequest) as info:
        ExportRequest.from_payload(raw)
    assert reason in str(info.value)


def test_extension_includes_gzip():
    assert parse(options={"compression": "gzip"}).extension == "csv.gz"
    assert parse(format="parquet").extension == "parquet"


def test_empty_filter_lists_are_refused_not_read_as_match_nothing():
    with pytest.raises(InvalidRequest, match="filters.severity: List should have at least 1 item"):
        parse(filters={"severity": []})


@pytest.mark.parametrize("field, value", [("from", "9999-12-24T00:00:00Z"), ("to", "9999-12-31T23:59:59-05:00"),
                                          ("from", "0001-01-01T00:00:00+05:00"), ("from", "1969-12-31T23:59:59Z")])
def test_dates_a_period_cannot_be_computed_from_are_refused_at_intake(field, value):
    """A report a week either side of year 9999 overflowed at run time (and was retried); refuse it up front."""
    payload = {"id": "far", "workspaceId": "ws_a", "userId": "u_a", "resourceType": "report", "format": "html",
               "filters": {field: value}}
    with pytest.raises(InvalidRequest, match="date must be from 1970-01-01 to before 2100-01-01"):
        ExportRequest.from_payload(json.dumps(payload))
    with pytest.raises(InvalidRequest, match="createdAt"):
        ExportRequest.from_payload(json.dumps({**payload, "filters": {}, "createdAt": value}))
