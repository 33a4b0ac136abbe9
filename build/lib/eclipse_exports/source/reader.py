"""Streaming reads from the source database as Arrow record batches, inside one snapshot.

An export opens one :func:`export_snapshot` and asks it for the row count and
then for the rows, so both come from the same snapshot and the count used
for the size check and progress is the number of rows written.

- PostgreSQL: an ADBC connection in one ``REPEATABLE READ, READ ONLY``
  transaction. Rows arrive as Arrow batches straight from the server's
  binary ``COPY`` stream (no Python object per value), so an export runs
  close to ``COPY ... TO STDOUT`` speed in constant memory. ``COPY`` takes no
  bind parameters, so the statement's parameters are bound client-side by
  psycopg2's own quoting (``cursor.mogrify``, libpq's escaping) — exactly
  what psycopg2 does for every query it sends.
- Other databases (SQLite): one read transaction through SQLAlchemy with a
  streaming cursor, rows turned into Arrow batches ``batch_rows`` at a time.

Either way only about one batch is in memory at a time.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, Select, String, type_coerce

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000
# Bytes per batch (the PostgreSQL driver's default is 16 MiB; 2 MiB keeps an export process under 300 MB):
# wide rows make smaller batches, so the memory an export needs depends on neither row count nor width.
BATCH_BYTES = 2 * 1024 * 1024
PYTHON_ROWS_PER_FETCH = 5_000


class Snapshot(Protocol):
    """A consistent, read-only view of the source database for one export."""

    def count(self, query: Select) -> int:
        """Run a ``count_query`` and return its integer result."""

    def record_batches(self, query: Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Yield the rows of an ``export_query`` as batches with exactly ``schema``."""


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch's columns to ``schema`` (text timestamps are parsed; naive ones are UTC)."""
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if pa.types.is_timestamp(field.type) and not pa.types.is_timestamp(column.type):
            column = pc.cast(pc.cast(column, pa.string()), pa.timestamp("us"))
        if pa.types.is_timestamp(column.type) and column.type.tz is None and field.type.tz is not None:
            column = pc.cast(column, pa.timestamp(column.type.unit))
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        if column.type != field.type:
            column = pc.cast(column, field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _SqlAlchemySnapshot:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def count(self, query: Select) -> int:
        return int(self.conn.execute(query).scalar_one())

    def record_batches(self, query: Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # Timestamps are read as the driver gives them (SQLite: stored text), and parsed by Arrow in bulk.
        columns = [
            type_coerce(col, String).label(field.name) if pa.types.is_timestamp(field.type) else col
            for col, field in zip(query.selected_columns, schema, strict=True)
        ]
        query = query.with_only_columns(*columns, maintain_column_froms=True)
        # Python row objects take ~10x the memory of their Arrow form: fetch them in small chunks,
        # convert each at once, and gather the compact Arrow chunks into full batches.
        fetch_rows = min(batch_rows, PYTHON_ROWS_PER_FETCH)
        result = self.conn.execution_options(stream_results=True, yield_per=fetch_rows).execute(query)
        pending: list[pa.RecordBatch] = []
        pending_rows = pending_bytes = 0
        for rows in result.partitions(fetch_rows):
            pending.append(_to_batch(rows, schema))
            pending_rows += len(rows)
            pending_bytes += pending[-1].nbytes
            del rows
            if pending_rows >= batch_rows or pending_bytes >= BATCH_BYTES:
                yield _combine(pending, schema)
                pending, pending_rows, pending_bytes = [], 0, 0
        if pending:
            yield _combine(pending, schema)


def _to_batch(rows: list, schema: pa.Schema) -> pa.RecordBatch:
    values = list(zip(*rows, strict=True))
    arrays = [
        pa.array(col) if pa.types.is_timestamp(field.type) else pa.array(col, type=field.type)
        for col, field in zip(values, schema, strict=True)
    ]
    return _conform(pa.RecordBatch.from_arrays(arrays, names=schema.names), schema)


def _combine(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, schema=schema).combine_chunks().to_batches()[0]


class _PostgresArrowSnapshot:
    def __init__(self, adbc_conn: Any, quoting_cursor: Any) -> None:
        self.adbc, self.quoting = adbc_conn, quoting_cursor

    def _sql(self, query: Select) -> str:
        from sqlalchemy.dialects.postgresql import psycopg2 as pg_psycopg2  # PostgreSQL sources only

        compiled = query.compile(dialect=pg_psycopg2.dialect(), compile_kwargs={"render_postcompile": True})
        return self.quoting.mogrify(str(compiled), compiled.params).decode()

    def _stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.adbc)
        try:
            statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            statement.set_sql_query(sql)
            handle, _rows = statement.execute_query()
            yield from pa.RecordBatchReader._import_from_c(handle.address)
        finally:
            statement.close()

    def execute(self, sql: str) -> None:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.adbc)
        try:
            statement.set_sql_query(sql)
            statement.execute_update()
        finally:
            statement.close()

    def count(self, query: Select) -> int:
        batches = list(self._stream(self._sql(query)))
        return int(batches[0].column(0)[0].as_py())

    def record_batches(self, query: Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        for batch in self._stream(self._sql(query)):
            # The driver sizes batches by bytes; slicing (zero-copy) keeps progress regular.
            for offset in range(0, batch.num_rows, batch_rows):
                yield _conform(batch.slice(offset, batch_rows), schema)


def clean_up_after(error: BaseException, steps: tuple[Callable[[], object], ...]) -> None:
    """Run every clean-up step after ``error`` ended the work, letting none of their errors replace it.

    When the connection is gone (killed, timed out), the rollback fails too ("Failed to rollback: no connection
    to the server"); raised, it would hide the first cause. Each such error is logged and added to ``error``
    as a note (``error.__notes__``) instead, which the export asset writes to the run log.
    """
    for step in steps:
        try:
            step()
        except Exception as cleanup_error:  # noqa: BLE001 - the first cause must stay the one raised
            note = f"while cleaning up after it: {type(cleanup_error).__name__}: {cleanup_error}".strip()
            log.warning("%s (after %s: %s)", note, type(error).__name__, error)
            error.add_note(note)


def _adbc_uri(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def export_snapshot(engine: Engine) -> Iterator[Snapshot]:
    """Open a read-only snapshot of ``engine``'s database for one export (see the module docstring).

    The transaction is rolled back at the end; nothing is ever written.
    Raises the driver's errors (``sqlalchemy.exc.SQLAlchemyError``,
    ``adbc_driver_manager.Error``) when the database cannot be reached.
    """
    if engine.dialect.name == "postgresql":
        # The driver's low-level API: its DB-API module would import pandas and Polars (~90 MB).
        import adbc_driver_manager
        import adbc_driver_postgresql

        raw = engine.raw_connection()
        database = adbc_driver_postgresql.connect(_adbc_uri(engine))
        conn = adbc_driver_manager.AdbcConnection(database)
        cleanup = (conn.rollback, conn.close, database.close, raw.close)
        try:
            conn.set_autocommit(False)
            snapshot = _PostgresArrowSnapshot(conn, raw.cursor())
            snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot.execute("SET LOCAL TIME ZONE 'UTC'")
            yield snapshot
        except BaseException as exc:
            clean_up_after(exc, cleanup)
            raise
        try:
            conn.rollback()
        finally:
            conn.close()
            database.close()
            raw.close()
        return
    with engine.connect() as conn, conn.begin() as tx:
        yield _SqlAlchemySnapshot(conn)
        tx.rollback()
