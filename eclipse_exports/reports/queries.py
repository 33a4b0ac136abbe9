"""SQL helpers every report figure shares: UTC moments back from either database, grouped counts, periods."""

from datetime import UTC, datetime

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

OPEN_INFRINGEMENT_STATUSES = ("open", "in_review", "takedown_requested")
"""The statuses of an infringement that still needs work (the backlog)."""


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored in UTC); PostgreSQL aware ones. ``None`` stays ``None``."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def counts(conn: Connection, column, where: ColumnElement) -> dict:
    """``{value: rows}`` of ``column`` over the rows matching ``where`` (grouped in SQL)."""
    rows = conn.execute(select(column, func.count()).where(where).group_by(column))
    return {value: n for value, n in rows}


def between(column, start: datetime, end: datetime) -> ColumnElement:
    """``start <= column < end``."""
    return and_(column >= start, column < end)
