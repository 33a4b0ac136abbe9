"""The exported columns of each resource (docs/interface.md section 4), as one Arrow schema each.

Every format writes exactly these columns in this order. Timestamps are
``timestamp[us, UTC]`` in Arrow (and Parquet); text formats render them as
``YYYY-MM-DDTHH:MM:SSZ``. ``action_count`` is an integer. A column whose field metadata says
:data:`JSON_OBJECT` (``details``, always the last column) holds JSON text: CSV and Parquet carry the text,
JSON and JSONL write it as the object it is.
"""

import pyarrow as pa

from eclipse_exports.models import ResourceType

TIMESTAMP = pa.timestamp("us", tz="UTC")
JSON_OBJECT = {b"eclipse:json": b"object"}


def is_json_object(field: pa.Field) -> bool:
    """Whether ``field`` holds JSON text written as an object in JSON and JSONL."""
    return (field.metadata or {}).get(b"eclipse:json") == b"object"


EXPORT_SCHEMAS: dict[ResourceType, pa.Schema] = {
    ResourceType.ALERTS: pa.schema(
        [
            ("id", pa.string()),
            ("title", pa.string()),
            ("url", pa.string()),
            ("brand", pa.string()),
            ("severity", pa.string()),
            ("status", pa.string()),
            ("detected_at", TIMESTAMP),
            ("monitor_source", pa.string()),
        ]
    ),
    ResourceType.INFRINGEMENTS: pa.schema(
        [
            ("id", pa.string()),
            ("title", pa.string()),
            ("type", pa.string()),
            ("url", pa.string()),
            ("domain", pa.string()),
            ("brand", pa.string()),
            ("severity", pa.string()),
            ("status", pa.string()),
            ("detected_at", TIMESTAMP),
            ("action_count", pa.int64()),
        ]
    ),
    ResourceType.ACTIONS: pa.schema(
        [
            ("id", pa.string()),
            ("action_type", pa.string()),
            ("status", pa.string()),
            ("infringement_id", pa.string()),
            ("priority", pa.string()),
            ("assigned_to", pa.string()),
            ("created_at", TIMESTAMP),
            ("completed_at", TIMESTAMP),
            ("result", pa.string()),
        ]
    ),
    ResourceType.AUDIT_LOGS: pa.schema(
        [
            ("id", pa.string()),
            ("occurred_at", TIMESTAMP),
            ("actor_email", pa.string()),
            ("action", pa.string()),
            ("target_type", pa.string()),
            ("target_id", pa.string()),
            ("ip_address", pa.string()),
            ("user_agent", pa.string()),
            pa.field("details", pa.string(), metadata=JSON_OBJECT),
        ]
    ),
    ResourceType.EXPORT_AUDIT: pa.schema(
        [
            ("event_id", pa.string()),
            ("time", TIMESTAMP),
            ("workspace_id", pa.string()),
            ("job_id", pa.string()),
            ("actor", pa.string()),
            ("event", pa.string()),
            pa.field("details", pa.string(), metadata=JSON_OBJECT),
        ]
    ),
}


def export_schema(resource: ResourceType) -> pa.Schema:
    """The Arrow schema of a data resource's export; ``KeyError`` for ``report``."""
    return EXPORT_SCHEMAS[ResourceType(resource)]
