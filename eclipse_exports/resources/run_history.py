"""``InstanceRunHistory``: the Dagster instance's runs, event logs and compute logs as the history pass
(:mod:`eclipse_exports.retention.history`) sees them.

Deletion is Dagster's own where it can be: ``DagsterInstance.delete_run`` removes a run with its event log, and
the compute log manager's ``delete_logs`` its logs. On one SQL database (PostgreSQL) a batch of runs is deleted
with the same statements ``delete_run`` issues, for the whole batch at once (Dagster's own table definitions;
``delete_run`` costs three transactions a run, ~40 runs/s on a busy 2-core host, see bench/history_prune.py).
Only the S3 sweep lists the compute-log prefix itself, once per pass, so a pass over 100,000 runs makes a few
hundred S3 requests instead of two per run.
"""

import os
import re
import shutil
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.storage.cloud_storage_compute_log_manager import CloudStorageComputeLogManager
from dagster._core.storage.dagster_run import FINISHED_STATUSES, IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from sqlalchemy import select

from eclipse_exports.retention.history import HistorySummary, prune_run_history

RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A staged folder that is not a run's (a sensor or schedule tick's) is left this long after its last change.
TICK_STAGING_GRACE_SECONDS = 3600
S3_DELETE_BATCH = 1000


class InstanceRunHistory:
    """:class:`eclipse_exports.retention.history.RunHistory` over a live ``DagsterInstance``."""

    def __init__(self, instance: DagsterInstance):
        self._instance = instance

    def finished_run_ids(self, updated_before: datetime, after_run_id: str | None, limit: int) -> list[str]:
        """Finished runs last updated before the moment, newest first in storage order, after ``after_run_id``."""
        return list(self._instance.run_storage.get_run_ids(
            RunsFilter(statuses=FINISHED_STATUSES, updated_before=updated_before), cursor=after_run_id, limit=limit))

    def protected_run_ids(self) -> set[str]:
        """The run of every asset partition's (and unpartitioned asset's) latest materialization."""
        protected: set[str] = set()
        for key in self._instance.get_asset_keys():
            by_partition = self._instance.get_latest_storage_id_by_partition(
                key, DagsterEventType.ASSET_MATERIALIZATION)
            if by_partition:
                protected |= self._run_ids_of(key, sorted(by_partition.values()))
            elif (latest := self._instance.get_latest_materialization_event(key)) is not None:
                protected.add(latest.run_id)
        return protected

    def _run_ids_of(self, key: AssetKey, storage_ids: list[int]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(storage_ids), 500):
            chunk = storage_ids[start:start + 500]
            records = self._instance.fetch_materializations(AssetRecordsFilter(key, storage_ids=chunk),
                                                            limit=len(chunk)).records
            found |= {record.run_id for record in records}
        return found

    def delete_runs(self, run_ids: list[str]) -> None:
        """Each run and its event log (Dagster's ``delete_run``), and its local compute logs.

        S3 compute logs go in :meth:`sweep_compute_logs`, many runs per request.
        """
        manager = self._instance.compute_log_manager
        local = manager.local_manager if isinstance(manager, CloudStorageComputeLogManager) else manager
        if self._one_sql_database():
            self._delete_batch(run_ids)
        else:
            for run_id in run_ids:
                self._instance.delete_run(run_id)
        for run_id in run_ids:
            local.delete_logs(prefix=[run_id])

    def _one_sql_database(self) -> bool:
        events = self._instance.event_log_storage
        return isinstance(self._instance.run_storage, SqlRunStorage) and isinstance(events, SqlEventLogStorage) \
            and not isinstance(events, SqliteEventLogStorage)  # the SQLite one keeps a file per run

    def _delete_batch(self, run_ids: list[str]) -> None:
        """``delete_run`` for many runs: asset event tags and events first, then the runs (tags cascade).

        Events go first so that a failure between the two leaves runs without events, which the next pass
        deletes, never events without their run.
        """
        events = SqlEventLogStorageTable
        asset_types = [DagsterEventType.ASSET_MATERIALIZATION.value, DagsterEventType.ASSET_OBSERVATION.value]
        with self._instance.event_log_storage.index_connection() as conn:
            asset_events = list(conn.execute(select(events.c.id).where(
                events.c.run_id.in_(run_ids), events.c.dagster_event_type.in_(asset_types))).scalars())
            if asset_events:
                conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(asset_events)))
            conn.execute(events.delete().where(events.c.run_id.in_(run_ids)))
        with self._instance.run_storage.connect() as conn:
            conn.execute(RunsTable.delete().where(RunsTable.c.run_id.in_(run_ids)))

    def sweep_compute_logs(self, older_than: datetime, dry_run: bool) -> tuple[int, int]:
        """S3 compute logs of deleted runs and old tick logs, then staged folders of runs no longer in progress.

        Returns (objects, folders) deleted, or due in a dry run. Only S3-style managers stage logs; the local
        manager's logs went with their runs.
        """
        manager = self._instance.compute_log_manager
        if not isinstance(manager, CloudStorageComputeLogManager):
            return 0, 0
        objects = self._sweep_bucket(manager, older_than, dry_run) if hasattr(manager, "_s3_session") else 0
        return objects, self._sweep_staging(Path(manager.local_manager._base_dir), dry_run)

    def _existing(self, run_ids: Iterable[str]) -> set[str]:
        wanted = list(set(run_ids))
        return set(self._instance.run_storage.get_run_ids(RunsFilter(run_ids=wanted))) if wanted else set()

    def _sweep_bucket(self, manager, older_than: datetime, dry_run: bool) -> int:
        # S3ComputeLogManager keeps its client, bucket and prefix private; its delete_logs would list per run.
        client, bucket = manager._s3_session, manager._s3_bucket
        root = f"{manager._s3_prefix}/storage/"
        removed, doomed = 0, []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
            old = [(o["Key"], o["Key"][len(root):].split("/", 1)[0]) for o in page.get("Contents", [])
                   if o["LastModified"] < older_than]
            alive = self._existing(owner for _key, owner in old if RUN_ID.match(owner))
            doomed += [key for key, owner in old if owner not in alive]
            while len(doomed) >= S3_DELETE_BATCH:
                removed += self._delete_keys(client, bucket, doomed[:S3_DELETE_BATCH], dry_run)
                doomed = doomed[S3_DELETE_BATCH:]
        return removed + (self._delete_keys(client, bucket, doomed, dry_run) if doomed else 0)

    @staticmethod
    def _delete_keys(client, bucket: str, keys: list[str], dry_run: bool) -> int:
        if dry_run:
            return len(keys)
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        if errors := answer.get("Errors"):
            raise RuntimeError(f"S3 did not delete {len(errors)} compute-log objects, first "
                               f"{errors[0].get('Key')}: {errors[0].get('Code')}")
        return len(keys)

    def _sweep_staging(self, base: Path, dry_run: bool) -> int:
        if not base.is_dir():
            return 0
        entries = [entry for entry in base.iterdir() if entry.is_dir()]
        running = set(self._instance.run_storage.get_run_ids(RunsFilter(
            run_ids=[e.name for e in entries if RUN_ID.match(e.name)], statuses=IN_PROGRESS_RUN_STATUSES))) \
            if entries else set()
        removed = 0
        for entry in entries:
            if RUN_ID.match(entry.name):
                due = entry.name not in running
            else:
                due = time.time() - _latest_change(entry) > TICK_STAGING_GRACE_SECONDS
            if due:
                removed += 1
                if not dry_run:
                    shutil.rmtree(entry, ignore_errors=True)
        return removed


def _latest_change(folder: Path) -> float:
    """The newest modification time of the folder or anything in it (seconds since the epoch)."""
    latest = folder.stat().st_mtime
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                latest = max(latest, os.stat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                continue
    return latest


def prune_instance_history(as_of: datetime, days: int, dry_run: bool = False) -> HistorySummary:
    """One history pass over the instance of ``DAGSTER_HOME`` (what ``eclipse-exports cleanup`` runs)."""
    with DagsterInstance.get() as instance:
        return prune_run_history(InstanceRunHistory(instance), as_of, days, dry_run=dry_run)
