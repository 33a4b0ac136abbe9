"""Streaming reads from the source database as Arrow record batches.

An export reads inside one snapshot (:func:`export_snapshot`): on PostgreSQL a
``REPEATABLE READ READ ONLY`` transaction, so the row count used for the
size check and progress and the rows written are the same rows. Rows leave
the database through a server-side cursor in batches; only one batch is in
memory at a time.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlalchemy import Connection, Engine, Select

DEFAULT_BATCH_ROWS = 50_000


@contextmanager
def export_snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection with one transaction open for the whole export.

    PostgreSQL: ``REPEATABLE READ``, ``READ ONLY``. SQLite: one read
    transaction (a consistent view while it lasts). The transaction is rolled
    back at the end; nothing is ever written.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin() as tx:
            yield conn
            tx.rollback()


def count_rows(conn: Connection, query: Select) -> int:
    """Run a ``count_query`` and return its integer result."""
    return int(conn.execute(query).scalar_one())


def iter_record_batches(
    conn: Connection, query: Select, schema: pa.Schema, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Yield the query's rows as record batches of at most ``batch_rows`` rows with ``schema``.

    The query's columns must be ``schema``'s fields in order. Naive datetimes
    (SQLite) are taken as UTC. Raises ``pyarrow.ArrowInvalid`` when a value
    does not fit its column type.
    """
    result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
    for rows in result.partitions(batch_rows):
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        arrays = [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
