"""What a clean-up pass or purge did, per workspace, and how it is told: counts, failures, unparseable keys."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_REPORTED_KEYS = 100
MAX_REPORTED_FAILURES = 20


@dataclass
class WorkspaceTally:
    """What a pass did in one workspace; bytes are object sizes."""

    files: int = 0
    reports: int = 0
    bytes_removed: int = 0
    uploads_aborted: int = 0
    errors: int = 0
    live_files: int = 0
    live_bytes: int = 0


@dataclass
class FailedBatch:
    """Keys S3 did not delete (or that were held back) and why."""

    keys: list[str]
    cause: str


@dataclass
class CleanupSummary:
    """The outcome of one pass (or one purge).

    ``workspaces`` maps workspace id to its :class:`WorkspaceTally`;
    ``failures`` holds the first 20 failed batches in full, ``failed_keys``
    counts all; ``unparseable`` the first 100 keys that were left alone,
    ``unparseable_count`` all of them; ``errors`` anything else that stopped part
    of the pass (a listing or Redis outage). :attr:`ok` is false when anything failed.
    """

    as_of: datetime
    dry_run: bool = False
    workspaces: dict[str, WorkspaceTally] = field(default_factory=dict)
    failures: list[FailedBatch] = field(default_factory=list)
    failed_keys: int = 0
    unparseable: list[str] = field(default_factory=list)
    unparseable_count: int = 0
    errors: list[str] = field(default_factory=list)
    objects_listed: int = 0
    jobs_expired: int = 0
    deferred: int = 0
    stream_entries_trimmed: int = 0
    dead_letters_trimmed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every deletion, abort and update the pass attempted succeeded."""
        return not self.failed_keys and not self.errors

    def tally(self, workspace_id: str) -> WorkspaceTally:
        """The workspace's tally, created on first use."""
        return self.workspaces.setdefault(workspace_id, WorkspaceTally())

    @property
    def files_removed(self) -> int:
        """Export files and reports deleted (or, in a dry run, due)."""
        return sum(t.files + t.reports for t in self.workspaces.values())

    @property
    def bytes_removed(self) -> int:
        """Bytes of the files removed."""
        return sum(t.bytes_removed for t in self.workspaces.values())

    @property
    def uploads_aborted(self) -> int:
        """Incomplete uploads aborted."""
        return sum(t.uploads_aborted for t in self.workspaces.values())

    def record_failure(self, workspace_ids: list[str], keys: list[str], cause: str) -> None:
        """Note a batch that failed, counting an error against each key's workspace."""
        self.failed_keys += len(keys)
        for workspace_id in workspace_ids:
            self.tally(workspace_id).errors += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(FailedBatch(keys, cause))

    def table(self) -> list[dict[str, Any]]:
        """One row per workspace that had anything removed, aborted or failed, sorted by workspace id.

        Keys: ``workspace``, ``files``, ``reports``, ``bytes_removed``, ``uploads_aborted``, ``errors``.
        """
        return [{"workspace": ws, "files": t.files, "reports": t.reports, "bytes_removed": t.bytes_removed,
                 "uploads_aborted": t.uploads_aborted, "errors": t.errors}
                for ws, t in sorted(self.workspaces.items())
                if t.files or t.reports or t.uploads_aborted or t.errors]

    def render(self) -> str:
        """The summary as text: a table of workspaces, totals, failures and unparseable keys."""
        verb, expired = ("would remove", "would expire") if self.dry_run else ("removed", "expired")
        lines = [f"clean-up as of {self.as_of.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
                 f"{' (dry run: nothing deleted)' if self.dry_run else ''}: {verb} "
                 f"{_count(self.files_removed, 'file')} ({self.bytes_removed:,} bytes), "
                 f"{_count(self.uploads_aborted, 'incomplete upload')}; {_count(self.jobs_expired, 'job')} {expired}; "
                 f"{_count(self.objects_listed, 'object')} listed in {self.seconds:.1f}s"]
        rows = self.table()
        if rows:
            header = ("workspace", "files", "reports", "bytes_removed", "uploads_aborted", "errors")
            widths = [max(len(h), *(len(f"{r[h]:,}" if isinstance(r[h], int) else r[h]) for r in rows))
                      for h in header]
            lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
            for r in rows:
                lines.append("  ".join((f"{r[h]:,}" if isinstance(r[h], int) else r[h]).ljust(w)
                                       for h, w in zip(header, widths, strict=True)))
        if self.deferred:
            lines.append(f"{self.deferred:,} expired files kept for now: a run of their job is writing them again")
        if self.stream_entries_trimmed or self.dead_letters_trimmed:
            lines.append(f"trimmed {self.stream_entries_trimmed:,} handled requests and "
                         f"{self.dead_letters_trimmed:,} dead letters")
        for failure in self.failures:
            shown = ", ".join(failure.keys[:5]) + (f" and {len(failure.keys) - 5:,} more"
                                                     if len(failure.keys) > 5 else "")
            lines.append(f"FAILED {len(failure.keys):,} keys ({shown}): {failure.cause}")
        if self.failed_keys > sum(len(f.keys) for f in self.failures):
            lines.append(f"FAILED {self.failed_keys:,} keys in all; the next run retries them")
        for error in self.errors:
            lines.append(f"ERROR {error}")
        if self.unparseable_count:
            lines.append(f"{self.unparseable_count:,} keys under the workspaces prefix do not parse and were left "
                         f"alone: {', '.join(self.unparseable[:10])}"
                         + (" …" if self.unparseable_count > 10 else ""))
        return "\n".join(lines)

def _count(number: int, noun: str) -> str:
    """``1 file``, ``12 files``: a count with thousands separators and its noun in the right number."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


