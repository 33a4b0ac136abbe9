"""The exported columns of each resource (docs/interface.md section 4), as one Arrow schema each.

Every format writes exactly these columns in this order. Timestamps are
``timestamp[us, UTC]`` in Arrow (and Parquet); text formats render them as
``YYYY-MM-DDTHH:MM:SSZ``. ``action_count`` is an integer.
"""

import pyarrow as pa

from eclipse_exports.models import ResourceType

TIMESTAMP = pa.timestamp("us", tz="UTC")

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
}


def export_schema(resource: ResourceType) -> pa.Schema:
    """The Arrow schema of a data resource's export; ``KeyError`` for ``report``."""
    return EXPORT_SCHEMAS[ResourceType(resource)]
