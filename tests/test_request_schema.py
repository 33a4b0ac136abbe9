"""The committed JSON Schema of a request (``schemas/export-request.schema.json``) against the pydantic model.

(i) Drift: the file must be exactly what ``scripts/generate_request_schema.py`` produces from the model now.
(ii) Agreement: good and bad payloads get the same verdict from the schema (``jsonschema``) and the model.
The schema holds the per-field rules only; the cross-field rules (format/resource pairs, filters and options
that must fit the resource and format, ``from`` < ``to``) are the model's alone, so those payloads are checked
on the model side only.
"""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from eclipse_exports.models import ExportRequest, InvalidRequest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "generate_request_schema.py"
SCHEMA_FILE = ROOT / "schemas" / "export-request.schema.json"
REGENERATE = ".venv/bin/python scripts/generate_request_schema.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_request_schema", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_committed_schema_matches_the_model():
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE.relative_to(ROOT)} is missing; run: {REGENERATE}"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == _generator().render(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} no longer matches ExportRequest in eclipse_exports/models.py; "
        f"run: {REGENERATE} and commit the result (and tell the web app team if the contract changed)"
    )


def test_schema_uses_contract_field_names_and_identifies_itself():
    schema = _committed()
    assert schema["$id"] and schema["title"] and schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {"id", "workspaceId", "userId", "resourceType", "format", "filters",
                                         "options", "delivery", "createdAt"}
    assert schema["required"] == ["id", "workspaceId", "userId", "resourceType", "format"]
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert set(defs["ExportFilters"]["properties"]) == {"severity", "status", "brand", "from", "to",
                                                                "action", "actor"}
    assert set(defs["ExportOptions"]["properties"]) == {"compression", "excelCompatible"}
    assert defs["ExportFilters"]["additionalProperties"] is False
    assert defs["ExportOptions"]["additionalProperties"] is False
    text = json.dumps(schema)
    for python_name in ("workspace_id", "user_id", "resource_type", "excel_compatible", "date_from", "created_at"):
        assert f'"{python_name}"' not in text


BASE = {"id": "job-1", "workspaceId": "ws_a", "userId": "u_analyst", "resourceType": "alerts", "format": "csv"}


def _with(**changes) -> dict:
    payload = {**BASE, **changes}
    return {k: v for k, v in payload.items() if v is not ...}


GOOD = {
    "minimal": BASE,
    "every field": _with(filters={"severity": ["high", "critical"], "status": ["new"], "brand": ["Acme Pay"],
                                  "from": "2026-11-01T00:00:00Z", "to": "2026-11-15T00:00:00+01:00"},
                         options={"compression": "gzip", "excelCompatible": True}, delivery="email",
                         createdAt="2026-11-01T10:00:00Z"),
    "uuid id": _with(id="3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b"),
    "64-char id": _with(id="a" * 64),
    "report as html": _with(resourceType="report", format="html"),
    "empty filters and options": _with(filters={}, options={}),
    "explicit nulls in filters": _with(filters={"severity": None, "brand": None}),
    "200-char brand": _with(filters={"brand": ["b" * 200]}),
    "100 brands": _with(filters={"brand": [f"b{i}" for i in range(100)]}),
    "audit logs by verb, prefix and actor": _with(resourceType="audit_logs", format="parquet", filters={
        "action": ["alert.acknowledged", "member.*"], "actor": ["usr_acme_owner"], "from": "2026-11-01T00:00:00Z"}),
    "export audit as jsonl": _with(resourceType="export_audit", format="jsonl"),
}

BAD_PER_FIELD = {
    "missing id": _with(id=...),
    "missing workspaceId": _with(workspaceId=...),
    "missing format": _with(format=...),
    "numeric id": _with(id=123),
    "null id": _with(id=None),
    "empty id": _with(id=""),
    "65-char id": _with(id="a" * 65),
    "path traversal in workspaceId": _with(workspaceId="../../ws_b"),
    "slash in workspaceId": _with(workspaceId="ws_a/../ws_b"),
    "url-encoded traversal": _with(workspaceId="..%2F..%2Fws_b"),
    "absolute path id": _with(id="/etc/passwd"),
    "non-ascii lookalike": _with(workspaceId="ws_\u0430"),
    "unknown resource": _with(resourceType="users"),
    "unknown format": _with(format="xlsx"),
    "format as list": _with(format=["csv"]),
    "filters as string": _with(filters="severity=high"),
    "filters as list": _with(filters=[{"severity": ["high"]}]),
    "severity as string": _with(filters={"severity": "high"}),
    "unknown severity": _with(filters={"severity": ["urgent"]}),
    "empty brand": _with(filters={"brand": [""]}),
    "201-char brand": _with(filters={"brand": ["b" * 201]}),
    "101 brands": _with(filters={"brand": [f"b{i}" for i in range(101)]}),
    "brand as number": _with(filters={"brand": [7]}),
    "capitalised verb": _with(resourceType="audit_logs", filters={"action": ["Member.added"]}),
    "wildcard inside a verb": _with(resourceType="audit_logs", filters={"action": ["member.*.added"]}),
    "bare wildcard": _with(resourceType="audit_logs", filters={"action": ["*"]}),
    "actor outside the id pattern": _with(resourceType="audit_logs", filters={"actor": ["../usr"]}),
    "unknown filter": _with(filters={"workspaceId": "ws_b"}),
    "excelCompatible as string": _with(options={"excelCompatible": "true"}),
    "excelCompatible as number": _with(options={"excelCompatible": 1}),
    "unknown compression": _with(options={"compression": "zip"}),
    "unknown option": _with(options={"path": "../ws_b"}),
    "unknown field email": _with(email="attacker@evil.example"),
    "unknown field to": _with(delivery="email", to="attacker@evil.example"),
    "delivery to an address": _with(delivery="attacker@evil.example"),
    "createdAt as number": _with(createdAt=1_700_000_000),
    "top-level array": [BASE],
    "top-level string": json.dumps(BASE),
}

# Valid field by field, refused by the model's cross-field rules only: the schema does not carry them.
BAD_CROSS_FIELD_ONLY = {
    "report as csv": _with(resourceType="report", format="csv"),
    "alerts as html": _with(format="html"),
    "severity filter on actions": _with(resourceType="actions", filters={"severity": ["high"]}),
    "brand filter on actions": _with(resourceType="actions", filters={"brand": ["Acme"]}),
    "alert status on infringements": _with(resourceType="infringements", filters={"status": ["new"]}),
    "from not before to": _with(filters={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
    "gzip parquet": _with(format="parquet", options={"compression": "gzip"}),
    "excelCompatible json": _with(format="json", options={"excelCompatible": True}),
    "action filter on alerts": _with(filters={"action": ["alert.acknowledged"]}),
    "actor filter on export_audit": _with(resourceType="export_audit", filters={"actor": ["usr_acme_owner"]}),
    "status filter on audit_logs": _with(resourceType="audit_logs", filters={"status": ["new"]}),
}


def _model_accepts(payload) -> bool:
    try:
        ExportRequest.from_payload(json.dumps(payload))
    except InvalidRequest:
        return False
    return True


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _committed()
    jsonschema.Draft202012Validator.check_schema(schema)
    # No format assertion: "date-time" stays an annotation, the offset and calendar checks are the model's.
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", GOOD)
def test_good_payloads_pass_schema_and_model(validator, name):
    payload = GOOD[name]
    assert list(validator.iter_errors(payload)) == []
    assert _model_accepts(payload)


@pytest.mark.parametrize("name", BAD_PER_FIELD)
def test_per_field_violations_fail_schema_and_model(validator, name):
    payload = BAD_PER_FIELD[name]
    assert not validator.is_valid(payload)
    assert not _model_accepts(payload)


@pytest.mark.parametrize("name", BAD_CROSS_FIELD_ONLY)
def test_cross_field_rules_are_the_models_alone(validator, name):
    payload = BAD_CROSS_FIELD_ONLY[name]
    assert validator.is_valid(payload)
    assert not _model_accepts(payload)


@pytest.mark.parametrize("payload", [
    {"id": "job-1", "workspace_id": "ws_a", "userId": "u_analyst", "resourceType": "alerts", "format": "csv"},
    _with(options={"excel_compatible": True}),
    _with(filters={"date_from": "2026-11-01T00:00:00Z"}),
], ids=["workspace_id", "excel_compatible", "date_from"])
def test_schema_and_model_agree_on_python_attribute_names(validator, payload):
    assert not validator.is_valid(payload)
    assert not _model_accepts(payload)
