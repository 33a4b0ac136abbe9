"""Redis key names (docs/interface.md sections 2 and 3, plus the project's own: id registry, usage counters, purges)."""

REQUEST_STREAM = "eclipse:exports:requests"
DEAD_LETTER_STREAM = "eclipse:exports:dead-letter"


def job_status_key(job_id: str) -> str:
    """``eclipse:exports:job:{id}`` — the status hash of one export job."""
    return f"eclipse:exports:job:{job_id}"


def request_id_claim_key(job_id: str) -> str:
    """Internal: which stream entry first carried request id ``job_id`` (duplicate detection)."""
    return f"eclipse:exports:request-id:{job_id}"


def entry_claim_key(entry_id: str) -> str:
    """Internal: which reader (Dagster instance) handles request stream entry ``entry_id``, so two instances
    reading one stream never both launch it."""
    return f"eclipse:exports:entry-claim:{entry_id}"


def workspace_jobs_key(workspace_id: str) -> str:
    """``eclipse:exports:workspace:{id}:jobs`` — a sorted set of the workspace's job ids, scored by when
    each job was first seen (epoch seconds), so recent jobs are listed without scanning the keyspace."""
    return f"eclipse:exports:workspace:{workspace_id}:jobs"


def workspace_usage_key(workspace_id: str) -> str:
    """``eclipse:exports:usage:{workspaceId}`` — bytes of the workspace's export files (quota counter)."""
    return f"eclipse:exports:usage:{workspace_id}"


WORKSPACE_USAGE_PATTERN = "eclipse:exports:usage:*"
PURGED_WORKSPACES = "eclipse:exports:purged-workspaces"
"""Set of deleted workspaces whose files have all been removed (the purge sensor's record)."""
AWAITING_RETRY = "eclipse:exports:awaiting-retry"
"""Hash of job id → the failed run id whose Dagster run retry the job waits for (the retry watch's record)."""

# Figures kept for the queue's health and the Prometheus metrics (eclipse_exports/observability/), written as
# statuses change (queue/transitions.py) and as the intake refuses entries; never scanned for.
JOB_COUNTS = "eclipse:exports:metrics:jobs"
"""Hash ``{status}|{resource}|{format}`` → jobs that reached that final status (a counter that only grows)."""
REJECTION_COUNTS = "eclipse:exports:metrics:rejections"
"""Hash ``{code}`` → refused stream entries (``invalid_request``, ``duplicate``, ``forbidden``, …)."""
JOB_DURATION_HISTOGRAM = "eclipse:exports:metrics:job-duration"
"""Hash ``{resource}|{format}|{le}`` → jobs whose XADD → final status took at most ``le`` seconds (and above the
previous bound), plus ``…|sum`` and ``…|count``."""
FILE_BYTES_HISTOGRAM = "eclipse:exports:metrics:file-bytes"
"""Hash ``{resource}|{format}|{le}`` → completed files of at most ``le`` bytes, plus ``…|sum`` and ``…|count``."""
RECENT_FINISHES = "eclipse:exports:metrics:recent-finishes"
"""Sorted set of the last hour's final statuses, scored by when (epoch seconds); each member
``{status}|{resource}|{format}|{XADD → final ms or empty}|{job id}``."""
RUN_COUNTS = "eclipse:exports:metrics:runs"
"""Hash ``{Dagster instance id}`` → JSON ``{"queued": n, "running": n, "at": epoch}``: each instance's run queue as
its queue-position sensor last saw it."""


def export_pace_key(resource: str, fmt: str) -> str:
    """``eclipse:exports:metrics:pace:{resource}:{format}`` — a list of the latest completed exports' pace
    (rows, streaming seconds, seconds after streaming), newest first, for estimates before a job's first batch."""
    return f"eclipse:exports:metrics:pace:{resource}:{fmt}"
