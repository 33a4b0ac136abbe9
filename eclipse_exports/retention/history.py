"""Dagster's own history kept bounded: which finished runs a pass deletes, in batches, and what it tells.

The rule (docs/retention.md, "Dagster's history"): a run is deleted, with its event log and compute logs,
once it finished (success, failure or canceled) and was last updated more than ``ECLIPSE_RUN_HISTORY_DAYS``
before the pass's as-of moment. Kept regardless: runs not finished (queued, starting, started, canceling),
and the run of each asset partition's latest materialization, so every partition still shows its last
materialization and the asset's history stays queryable for the period. Compute-log objects and staged
log folders are swept by the same rule.

This module knows nothing of Dagster: it works through a :class:`RunHistory` (the Dagster layer's adapter
over the instance, ``eclipse_exports/resources/run_history.py``), so the paging and the summary are tested
without a Dagster instance.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

DEFAULT_BATCH_SIZE = 500
MAX_REPORTED_ERRORS = 20


class RunHistory(Protocol):
    """Dagster's run storage, event log and compute logs as a pruning pass sees them."""

    def finished_run_ids(self, updated_before: datetime, after_run_id: str | None, limit: int) -> list[str]:
        """Up to ``limit`` finished runs last updated before the moment, in a stable storage order, following
        ``after_run_id`` (a run that still exists) or from the start of that order."""

    def protected_run_ids(self) -> set[str]:
        """Runs that hold an asset partition's latest materialization: never deleted."""

    def delete_runs(self, run_ids: list[str]) -> None:
        """Delete the runs with their event logs and their compute logs; raise on failure."""

    def sweep_compute_logs(self, older_than: datetime, dry_run: bool) -> tuple[int, int]:
        """Delete compute-log objects older than the moment whose run no longer exists (or that belong to no
        run: sensor and schedule tick logs), and staged log folders of runs no longer in progress.
        Returns (objects deleted or due, staged folders removed or due)."""


@dataclass
class HistorySummary:
    """The outcome of one history pass; counts are runs or objects, ``seconds`` wall time."""

    as_of: datetime
    cutoff: datetime
    dry_run: bool = False
    runs_examined: int = 0
    runs_deleted: int = 0
    runs_protected: int = 0
    log_objects_deleted: int = 0
    staging_dirs_removed: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every deletion the pass attempted succeeded."""
        return self.error_count == 0

    def error(self, message: str) -> None:
        """Count an error; keep the first ``MAX_REPORTED_ERRORS`` messages."""
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    @property
    def runs_per_second(self) -> float:
        """Deleted (or, in a dry run, due) runs per second of the pass."""
        return self.runs_deleted / self.seconds if self.seconds else 0.0

    def render(self) -> str:
        """A few lines for the CLI and the run log, like the export clean-up's summary."""
        verb = "due" if self.dry_run else "deleted"
        lines = [
            f"Dagster history as of {self.as_of.isoformat()}{' (dry run)' if self.dry_run else ''}: "
            f"finished runs last updated before {self.cutoff.isoformat()} are removed",
            f"  runs {verb}: {self.runs_deleted:,} of {self.runs_examined:,} examined "
            f"({self.runs_protected:,} kept as a partition's latest materialization) in {self.batches:,} batches",
            f"  compute-log objects {verb}: {self.log_objects_deleted:,}; staged log folders {verb}: "
            f"{self.staging_dirs_removed:,}",
            f"  {self.seconds:.1f}s ({self.runs_per_second:,.0f} runs/s)",
        ]
        if self.error_count:
            lines.append(f"  {self.error_count:,} errors (the next pass retries):")
            lines += [f"    - {e}" for e in self.errors]
        return "\n".join(lines)


def prune_run_history(history: RunHistory, as_of: datetime, days: int, batch_size: int = DEFAULT_BATCH_SIZE,
                      dry_run: bool = False) -> HistorySummary:
    """Delete every finished run older than ``days`` before ``as_of`` (UTC-aware), batch by batch.

    Pages through the finished runs in storage order; each batch's deletable runs are deleted at once (a failed
    batch is counted and left for the next pass), so memory holds one batch and the protected set. Then the
    compute logs are swept. Raises only for a failure to list (the storage is down): deletions that fail are
    reported in the summary's ``errors``.
    """
    started = time.monotonic()
    cutoff = as_of - timedelta(days=days)
    summary = HistorySummary(as_of=as_of, cutoff=cutoff, dry_run=dry_run)
    protected = history.protected_run_ids()
    after: str | None = None
    while True:
        batch = history.finished_run_ids(cutoff, after, batch_size)
        if not batch:
            break
        summary.batches += 1
        summary.runs_examined += len(batch)
        doomed = [run_id for run_id in batch if run_id not in protected]
        summary.runs_protected += len(batch) - len(doomed)
        deleted = False
        if doomed and not dry_run:
            try:
                history.delete_runs(doomed)
                deleted = True
            except Exception as exc:  # noqa: BLE001 - one batch's failure must not stop the pass
                summary.error(f"{len(doomed)} runs from {doomed[0]}: {type(exc).__name__}: {exc}")
        if deleted or dry_run:
            summary.runs_deleted += len(doomed)
        # The page goes on after the last run still stored: everything after it in the batch is gone.
        survivors = batch if not deleted else [run_id for run_id in batch if run_id in protected]
        if survivors:
            after = survivors[-1]
        if len(batch) < batch_size:
            break
    try:
        summary.log_objects_deleted, summary.staging_dirs_removed = history.sweep_compute_logs(cutoff, dry_run)
    except Exception as exc:  # noqa: BLE001 - reported; the runs are already gone, the next pass sweeps again
        summary.error(f"compute-log sweep: {type(exc).__name__}: {exc}")
    summary.seconds = time.monotonic() - started
    return summary
