"""SQLAlchemy engines for the source database, one per URL per process."""

from functools import lru_cache

from sqlalchemy import Engine, create_engine


@lru_cache(maxsize=8)
def source_engine(url: str) -> Engine:
    """A pooled engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg2://…``), cached per process."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
