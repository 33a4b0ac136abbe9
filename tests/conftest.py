"""Test services, really started on free ports: Redis, PostgreSQL, S3 (moto's server).

Nothing here leans on the machine's own Redis (6379) or PostgreSQL (5432).
Session-scoped servers are shared; each test gets a flushed Redis database
and its own bucket.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, create_engine, text

from eclipse_exports.local.services import free_port, start_postgres, start_redis
from eclipse_exports.source.demo_data import create_schema
from eclipse_exports.storage.client import ExportStorage, make_s3_client
from tests.dataset import insert_dataset
from tests.report_dataset import insert_report_dataset

# CI runs the property tests on a fixed sequence of examples, so a green run stays green; locally they
# explore new examples every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ.update(
    AWS_ACCESS_KEY_ID="test-access-key",
    AWS_SECRET_ACCESS_KEY="test-secret-key-do-not-print",
    AWS_REGION="us-east-1",
    AWS_DEFAULT_REGION="us-east-1",
    ECLIPSE_SENSOR_LONG_POLL_MS="0",
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = start_redis(log_file=tmp_path_factory.mktemp("redis") / "redis.log")
    yield service.url
    service.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def storage(s3_endpoint: str, bucket: str) -> ExportStorage:
    return ExportStorage(make_s3_client(s3_endpoint), bucket, "tenant-files")


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield service.url
    service.stop()


def _fresh_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _sqlite_with(tmp_path_factory: pytest.TempPathFactory, insert: Callable[[Engine], None]) -> Engine:
    path: Path = tmp_path_factory.mktemp("sqlite") / "source.db"
    engine = create_engine(f"sqlite:///{path}")
    create_schema(engine)
    insert(engine)
    return engine


def _postgres_with(postgres_url: str, name: str, insert: Callable[[Engine], None]) -> Iterator[Engine]:
    engine = create_engine(_fresh_database(postgres_url, name))
    create_schema(engine)
    insert(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return _sqlite_with(tmp_path_factory, insert_dataset)


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    yield from _postgres_with(postgres_url, "dataset", insert_dataset)


@pytest.fixture(params=["sqlite", "postgresql"])
def source(request: pytest.FixtureRequest) -> Engine:
    """The hand-made dataset on each supported source database."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture(scope="session")
def report_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The week-aligned executive-report dataset (tests/report_dataset.py) in SQLite."""
    return _sqlite_with(tmp_path_factory, insert_report_dataset)


@pytest.fixture(scope="session")
def report_pg(postgres_url: str) -> Iterator[Engine]:
    """The executive-report dataset in PostgreSQL."""
    yield from _postgres_with(postgres_url, "reports", insert_report_dataset)


@pytest.fixture(params=["sqlite", "postgresql"])
def report_source(request: pytest.FixtureRequest) -> Engine:
    """The executive-report dataset on each supported source database."""
    return request.getfixturevalue("report_sqlite" if request.param == "sqlite" else "report_pg")
