"""``workspace_partitions_sensor`` against a real SQLite source that another process holds locked."""

import sqlite3

from dagster import SensorResult, SkipReason, build_sensor_context, instance_for_test
from sqlalchemy import create_engine

from eclipse_exports.resources import SourceDatabaseResource
from eclipse_exports.sensors import workspace_partitions_sensor
from eclipse_exports.source.demo_data import create_schema
from tests.dataset import insert_dataset


def test_a_locked_source_database_skips_the_tick_and_the_next_one_adds_the_workspaces(tmp_path):
    path = tmp_path / "source.db"
    engine = create_engine(f"sqlite:///{path}")
    create_schema(engine)
    insert_dataset(engine)
    engine.dispose()
    resource = SourceDatabaseResource(url=f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)  # a demo-data reload's write transaction
    holder.execute("BEGIN EXCLUSIVE")
    with instance_for_test() as instance:
        try:
            skipped = workspace_partitions_sensor(build_sensor_context(instance=instance), source_db=resource)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert isinstance(skipped, SkipReason) and "database is locked" in skipped.skip_message
        added = workspace_partitions_sensor(build_sensor_context(instance=instance), source_db=resource)
        assert isinstance(added, SensorResult)
        [request] = added.dynamic_partitions_requests
        assert "ws_a" in request.partition_keys
