"""Write ``schemas/export-request.schema.json``: the JSON Schema of a stream request, from the pydantic model.

The schema is generated from :class:`eclipse_exports.models.ExportRequest` with the interface's (camelCase)
field names, so producers such as the Eclipse web app can validate a payload before the ``XADD``.
It carries the per-field rules only (types, id pattern, vocabularies, lengths, unknown fields);
the cross-field rules of docs/interface.md section 2 (format/resource pairs, filters and options that must fit
the resource and format, ``from`` < ``to``) live in the model alone.

Usage: ``.venv/bin/python scripts/generate_request_schema.py`` (rewrite the file) or ``--check``
(exit 1 when the committed file is out of date). ``tests/test_request_schema.py`` runs the check.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eclipse_exports.models import ExportRequest  # noqa: E402 - the repository root must be importable first

SCHEMA_PATH = ROOT / "schemas" / "export-request.schema.json"
SCHEMA_ID = "https://eclipse-exports.invalid/schemas/export-request.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
DESCRIPTION = (
    "One export request, the UTF-8 JSON object in the 'payload' field of an entry of the Redis stream "
    "'eclipse:exports:requests' (docs/interface.md section 2). Generated from the pydantic model "
    "eclipse_exports.models.ExportRequest by scripts/generate_request_schema.py; do not edit by hand. "
    "Per-field rules only: the cross-field rules (format 'html' for 'report' and only for it; severity and "
    "brand filters for alerts and infringements only; status values from the resource's own vocabulary; "
    "'from' earlier than 'to', both with an offset; gzip not for parquet/html; excelCompatible for csv only) "
    "are checked by the exporter and answered with errorCode 'invalid_request'."
)


class _ContractNames(GenerateJsonSchema):
    """Leaves out the per-property titles pydantic derives from Python names ('Workspaceid')."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def build_schema() -> dict[str, Any]:
    """The request schema as a dict, the interface's names, ``$schema``/``$id``/``title`` first."""
    generated = ExportRequest.model_json_schema(by_alias=True, schema_generator=_ContractNames)
    generated.pop("title", None)
    generated.pop("description", None)
    return {"$schema": DIALECT, "$id": SCHEMA_ID, "title": "Eclipse export request", "description": DESCRIPTION,
            **generated}


def render() -> str:
    """The file content: stable key order, two-space indent, trailing newline."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{SCHEMA_PATH.relative_to(ROOT)} is out of date; run: .venv/bin/python "
                  "scripts/generate_request_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)}" + (" (unchanged)" if current == text else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
