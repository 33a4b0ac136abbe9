"""Where an export's rows come from, behind one shape (``count()``, ``batches(schema, batch_rows)``): the source
database inside one snapshot for the Eclipse tables, or this project's own audit trail for ``export_audit``."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import Engine

from eclipse_exports.models import ExportRequest, ResourceType
from eclipse_exports.source.queries import count_query, export_query
from eclipse_exports.source.reader import export_snapshot
from eclipse_exports.storage.client import ExportStorage


class RowSource(Protocol):
    """The rows of one export, read twice alike: once counted, once streamed."""

    def count(self) -> int:
        """How many rows :meth:`batches` yields."""

    def batches(self, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The rows in export order as batches of ``schema``."""


class _SourceRows:
    def __init__(self, snapshot: Any, request: ExportRequest) -> None:
        self.snapshot, self.request = snapshot, request

    def count(self) -> int:
        return self.snapshot.count(count_query(self.request.resource_type, self.request.workspace_id,
                                               self.request.filters))

    def batches(self, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        query = export_query(self.request.resource_type, self.request.workspace_id, self.request.filters)
        return self.snapshot.record_batches(query, schema, batch_rows)


class _AuditRows:
    """The workspace's export audit trail up to ``until`` (the run's start): later entries, the run's own
    included, are not part of this snapshot."""

    def __init__(self, storage: ExportStorage, client: Any, request: ExportRequest, until: datetime) -> None:
        from eclipse_exports.audit.trail import AuditTrail

        self.storage, self.trail, self.request = storage, AuditTrail(client), request
        self.until = min(until, request.filters.date_to) if request.filters.date_to else until

    def _entries(self) -> Iterator:
        from eclipse_exports.audit.reader import read_trail

        return read_trail(self.storage, self.trail, self.request.workspace_id, self.request.filters.date_from,
                          self.until)

    def count(self) -> int:
        return sum(1 for _ in self._entries())

    def batches(self, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        from eclipse_exports.audit.reader import entry_batches

        return entry_batches(self._entries(), schema, batch_rows)


@contextmanager
def export_rows(request: ExportRequest, engine: Engine, storage: ExportStorage, client: Any,
                until: datetime) -> Iterator[RowSource]:
    """The request's rows: its audit trail for ``export_audit``, else one read-only snapshot of the source
    database (held open until the block ends)."""
    if request.resource_type is ResourceType.EXPORT_AUDIT:
        yield _AuditRows(storage, client, request, until)
        return
    with export_snapshot(engine) as snapshot:
        yield _SourceRows(snapshot, request)
