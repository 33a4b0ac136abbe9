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

# Celery run workers (eclipse_exports/launchers/): the broker's queues and task results live under this prefix
# (Celery's global_keyprefix), so they never collide with the request stream or the status hashes.
RUN_WORKER_PREFIX = "eclipse:exports:run-workers:"
RUN_WORKER_NODES = "eclipse:exports:run-workers:nodes"
"""Hash worker node name → JSON ``{"queues": [...], "concurrency": n, "pid": n, "host": h, "at": epoch}``: each
worker group's parent refreshes its entry every few seconds (a stale entry is a dead group)."""


def run_worker_queue_key(queue: str) -> str:
    """The Redis list Celery's broker keeps queue ``queue``'s waiting tasks in (what an autoscaler watches)."""
    return f"{RUN_WORKER_PREFIX}{queue}"


def run_claim_key(run_id: str, attempt: int = 0) -> str:
    """Which delivery of run ``run_id``'s task (``attempt`` 0 = launch, n = n-th resume) executes it."""
    return f"{RUN_WORKER_PREFIX}claim:{run_id}:{attempt}"


def run_heartbeat_key(run_id: str) -> str:
    """JSON ``{"node", "pid", "at"}`` of the child executing run ``run_id``, expiring unless refreshed."""
    return f"{RUN_WORKER_PREFIX}heartbeat:{run_id}"


def run_cancel_key(run_id: str) -> str:
    """Present while an operator's terminate of run ``run_id`` waits for its worker to stop it."""
    return f"{RUN_WORKER_PREFIX}cancel:{run_id}"

def audit_stream_key(workspace_id: str) -> str:
    """``eclipse:exports:audit:{workspaceId}`` — the write-ahead stream of the workspace's export audit trail:
    one entry per event (fields ``eventId``, ``jobId``, ``actor``, ``event``, ``details``), appended in the same
    step as the status change it records, trimmed only once its day is archived to S3."""
    return f"{AUDIT_STREAM_PREFIX}{workspace_id}"


AUDIT_STREAM_PREFIX = "eclipse:exports:audit:"


def audit_archived_key(workspace_id: str) -> str:
    """``eclipse:exports:audit-archived:{workspaceId}`` — a hash with ``first`` and ``last``: the first and the last
    day (``YYYY-MM-DD``) whose complete audit archive was written, so ``audit verify`` notices archives deleted
    at either end of the chain."""
    return f"eclipse:exports:audit-archived:{workspace_id}"


def audit_lock_key(workspace_id: str) -> str:
    """``eclipse:exports:audit-lock:{workspaceId}`` — held while one workspace's audit days are archived."""
    return f"eclipse:exports:audit-lock:{workspace_id}"
