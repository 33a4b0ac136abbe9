"""Job status hashes in Redis (docs/interface.md section 3): one hash per export job.

Every value is a string; timestamps are ISO-8601 UTC. Besides the interface's
fields the store writes ``rowsWritten`` while a job runs, ``request`` (the
request's the interface's JSON, so ``eclipse-exports retry`` can send it again),
``retryOf`` for a re-submitted job, ``streamEntryId`` (the request's stream entry, whose
first part is the XADD time in ms), ``queuePosition`` while queued and ``etaSeconds`` /
``estimatedCompletionAt`` while running. Every status change goes through
:meth:`JobStatusStore.record_transition` (``queue/transitions.py``), which also counts final statuses.
A hash expires a week after the job's
file would (``retention_hours`` + 7 days).

Each job is also indexed in its workspace's sorted set
(``eclipse:exports:workspace:{id}:jobs``, scored by when the job was first
seen) the first time a write names its workspace; :meth:`JobStatusStore.recent_jobs`
reads it newest first. Entries older than the hashes' lifetime are trimmed
on every indexing write.
"""

import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

import redis

from eclipse_exports.models import ErrorCode, ExportRequest, JobStatus, iso_utc
from eclipse_exports.queue.keys import AWAITING_RETRY, job_status_key, workspace_jobs_key
from eclipse_exports.queue.transitions import TransitionScript

# HSET queuePosition only while the job is queued (ARGV = position; empty: remove it).
_SET_IF_QUEUED = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if ARGV[1] == '' then return redis.call('HDEL', KEYS[1], 'queuePosition') end
redis.call('HSET', KEYS[1], 'queuePosition', ARGV[1])
return 1
"""
# HSET and EXPIRE only when the hash does not exist yet; ARGV = ttl, field, value, field, value, ...
_CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED})
# Fields that describe a stored file; a failed job has none of them (docs/interface.md section 3).
FILE_FIELDS = ("rowCount", "byteSize", "filePath", "downloadUrl", "expiresAt")
# Fields that belong to some statuses only; a transition to any other status removes them.
STATUS_ONLY_FIELDS = {"queuePosition": {JobStatus.QUEUED},
                      "etaSeconds": {JobStatus.RUNNING}, "estimatedCompletionAt": {JobStatus.RUNNING}}


def request_fields(request: ExportRequest) -> dict[str, str]:
    """The identifying fields of a job's status hash, taken from its request."""
    return {
        "id": request.id,
        "workspaceId": request.workspace_id,
        "userId": request.user_id,
        "resourceType": request.resource_type.value,
        "format": request.format.value,
    }


class JobStatusStore:
    """Reads and writes ``eclipse:exports:job:{id}`` hashes on one Redis connection.

    ``client`` may be created with or without ``decode_responses``; reads
    always return ``str``.
    """

    def __init__(self, client: redis.Redis, retention_hours: int = 72) -> None:
        self.client = client
        self.ttl_seconds = (retention_hours + 7 * 24) * 3600
        self._transition = TransitionScript(client)
        self._set_if_queued = client.register_script(_SET_IF_QUEUED)

    def get(self, job_id: str) -> dict[str, str]:
        """The job's hash as a dict of strings; empty when unknown."""
        raw = self.client.hgetall(job_status_key(job_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def status(self, job_id: str) -> JobStatus | None:
        """The job's current status, or ``None`` when unknown."""
        value = self.client.hget(job_status_key(job_id), "status")
        return JobStatus(_text(value)) if value else None

    def write(self, job_id: str, fields: dict[str, Any], pipe: Any = None) -> None:
        """Set ``fields`` (``None`` values are skipped, others stringified) and renew the TTL.

        Fields naming the ``workspaceId`` also index the job in its workspace's sorted set. A ``status`` among
        them makes the write a transition (:meth:`record_transition`).
        """
        mapping = {k: (iso_utc(v) if isinstance(v, datetime) else str(v)) for k, v in fields.items() if v is not None}
        if "status" in mapping:
            self.record_transition(job_id, JobStatus(mapping.pop("status")), mapping, pipe=pipe)
            return
        key = job_status_key(job_id)
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        target.hset(key, mapping=mapping)
        target.expire(key, self.ttl_seconds)
        if "workspaceId" in mapping:
            self._index(job_id, mapping["workspaceId"], target)
        if pipe is None:
            target.execute()

    def record_transition(self, job_id: str, status: JobStatus, fields: dict[str, Any] | None = None,
                          drop: tuple[str, ...] = (), pipe: Any = None, actor: str = "",
                          audit_details: dict[str, Any] | None = None) -> None:
        """The one place a job's status changes: every status write of the project goes through here.

        In one atomic script (``queue/transitions.py``): set ``status`` and ``fields`` (``None`` skipped,
        datetimes as ISO-8601 UTC), delete ``drop`` and the fields that do not go with the new status
        (``queuePosition`` outside ``queued``; ``etaSeconds`` and ``estimatedCompletionAt`` outside ``running``),
        renew the TTL, and count a final status once in the figures ``eclipse_exports/observability/`` reads.
        Queued on ``pipe`` when given. The same script appends the change to the workspace's export audit trail
        (``requested``, ``run_started``, ``completed``…; see ``queue/transitions.py``): ``actor`` names the
        component of a system change (``system:run``), ``audit_details`` adds to what the entry records.
        """
        mapping = {k: (iso_utc(v) if isinstance(v, datetime) else str(v)) for k, v in (fields or {}).items()
                   if v is not None and k != "status"}
        stale = tuple(name for name in STATUS_ONLY_FIELDS if status not in STATUS_ONLY_FIELDS[name])
        target = pipe if pipe is not None else self.client.pipeline(transaction=True)
        self._transition(job_id, status, mapping, tuple(dict.fromkeys(drop + stale)), self.ttl_seconds, target,
                         actor=actor, audit_details=audit_details)
        if "workspaceId" in mapping:
            self._index(job_id, mapping["workspaceId"], target)
        if pipe is None:
            target.execute()

    def _index(self, job_id: str, workspace_id: str, pipe: Any) -> None:
        index, now = workspace_jobs_key(workspace_id), time.time()
        pipe.zadd(index, {job_id: now}, nx=True)
        pipe.zremrangebyscore(index, "-inf", now - self.ttl_seconds)
        pipe.expire(index, self.ttl_seconds)

    def recent_jobs(self, workspace_id: str, statuses: Collection[str] = (), limit: int = 20,
                    page: int = 200) -> list[dict[str, str]]:
        """Up to ``limit`` of the workspace's jobs, newest first, as status hashes (``{}`` never included).

        With ``statuses``, only jobs in one of them. Reads the workspace's index ``page`` ids at a
        time and their hashes in one pipelined round trip per page, so no call blocks Redis for long.
        """
        found: list[dict[str, str]] = []
        start = 0
        while len(found) < limit:
            ids = self.client.zrevrange(workspace_jobs_key(workspace_id), start, start + page - 1)
            if not ids:
                break
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(job_status_key(_text(job_id)))
            for raw in pipe.execute():
                fields = {_text(k): _text(v) for k, v in raw.items()}
                if fields and (not statuses or fields.get("status") in statuses):
                    found.append(fields)
            start += page
        return found[:limit]

    def pending(self, request: ExportRequest, created_at: datetime, pipe: Any = None,
                extra: dict[str, str] | None = None) -> None:
        """Producer side: the request is on the stream. Never touches a job that already has a status
        (a re-used id must not overwrite another job, and the sensor may have queued it already).
        ``extra`` fields (``retryOf``) are written with it."""
        fields = {**request_fields(request), "status": JobStatus.PENDING.value, "progress": 0,
                  "createdAt": iso_utc(request.created_at_utc or created_at), "request": request.to_payload(),
                  **(extra or {})}
        args = [self.ttl_seconds, *(str(x) for pair in fields.items() for x in pair)]
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        self.client.register_script(_CREATE_IF_ABSENT)(keys=[job_status_key(request.id)], args=args, client=target)
        self._index(request.id, request.workspace_id, target)
        if pipe is None:
            target.execute()

    def exists(self, job_id: str) -> bool:
        """Whether the job has a status hash."""
        return bool(self.client.exists(job_status_key(job_id)))

    def queued(self, request: ExportRequest, picked_up_at: datetime, entry_id: str | None = None) -> None:
        """The sensor has requested a run for the job; ``entry_id`` is its request stream entry (the XADD time)."""
        self.write(request.id, {**request_fields(request), "status": JobStatus.QUEUED.value, "progress": 0,
                                "createdAt": request.created_at_utc or picked_up_at, "request": request.to_payload(),
                                "streamEntryId": entry_id})

    def queue_positions(self, positions: dict[str, int], left: Collection[str] = ()) -> int:
        """Write ``queuePosition`` (job id → place from 1) to the jobs still ``queued``, and remove it from the
        ``left`` jobs (their run left the run queue but the job is still ``queued``: a run that is starting, or
        failed and awaits Dagster's retry). Returns how many positions were written.

        One atomic check per job, so a job that started meanwhile never gets a position back.
        """
        pipe = self.client.pipeline(transaction=False)
        for job_id, position in positions.items():
            self._set_if_queued(keys=[job_status_key(job_id)], args=[position], client=pipe)
        for job_id in left:
            self._set_if_queued(keys=[job_status_key(job_id)], args=[""], client=pipe)
        return sum(1 for written in pipe.execute()[:len(positions)] if written)

    def rejected(self, job_id: str, code: ErrorCode, message: str, fields: dict[str, str] | None = None,
                 at: datetime | None = None, entry_id: str | None = None) -> None:
        """The job will never run: ``code`` and a readable ``message``; ``entry_id`` is its stream entry."""
        known = self.client.hexists(job_status_key(job_id), "createdAt")
        extra: dict[str, Any] = {"createdAt": at} if at and not known else {}
        if entry_id:
            extra["streamEntryId"] = entry_id
        self.write(job_id, {**(fields or {"id": job_id}), **extra, "status": JobStatus.REJECTED.value,
                            "errorCode": code.value, "error": message})

    def running(self, request: ExportRequest, run_id: str, started_at: datetime) -> None:
        """The run has started exporting (an estimate of an earlier attempt of the job is dropped)."""
        self.record_transition(request.id, JobStatus.RUNNING, {
            **request_fields(request), "runId": run_id, "startedAt": started_at, "progress": 0, "rowsWritten": 0,
            "request": request.to_payload()}, drop=("etaSeconds", "estimatedCompletionAt"), actor="system:run")

    def requeued(self, job_id: str, failed_run_id: str) -> None:
        """The job's run ``failed_run_id`` died and Dagster will retry it: ``queued`` again, progress reset.

        The job is also recorded as awaiting that retry (``eclipse:exports:awaiting-retry``) until
        :meth:`retry_settled`, so a retry Dagster gives up on is noticed (see ``export_retry_watch_sensor``).
        """
        pipe = self.client.pipeline(transaction=True)
        self.record_transition(job_id, JobStatus.QUEUED, {"progress": 0, "rowsWritten": 0}, pipe=pipe,
                               drop=("queuePosition",))
        pipe.hset(AWAITING_RETRY, job_id, failed_run_id)
        pipe.execute()

    def awaiting_retry(self) -> dict[str, str]:
        """Jobs waiting for a Dagster run retry: job id → the failed run's id."""
        return {k.decode(): v.decode() for k, v in self.client.hgetall(AWAITING_RETRY).items()}

    def retry_settled(self, job_id: str) -> None:
        """The job no longer waits for a retry (it was launched, or the job was failed)."""
        self.client.hdel(AWAITING_RETRY, job_id)

    def progress(self, job_id: str, rows_written: int, total_rows: int, eta_seconds: float | None = None,
                 completes_at: datetime | None = None) -> None:
        """Rows written so far and the integer percentage (0–100) of ``total_rows``; with an estimate, the
        seconds left (``etaSeconds``, whole) and when the job should complete (``estimatedCompletionAt``)."""
        percent = 100 if total_rows <= 0 else min(100, rows_written * 100 // total_rows)
        self.write(job_id, {"progress": percent, "rowsWritten": rows_written, "rowCount": total_rows,
                            "etaSeconds": None if eta_seconds is None else max(0, round(eta_seconds)),
                            "estimatedCompletionAt": completes_at})

    def completed(self, job_id: str, fields: dict[str, Any], sha256: str | None = None) -> None:
        """The file is stored: ``fields`` carries rowCount, byteSize, filePath, downloadUrl, expiresAt, completedAt;
        ``sha256`` (hex, of the stored bytes) goes into the audit trail's ``completed`` entry."""
        self.record_transition(job_id, JobStatus.COMPLETED, {**fields, "progress": 100}, drop=("error", "errorCode"),
                               actor="system:run", audit_details={"sha256": sha256} if sha256 else None)

    def failed(self, job_id: str, code: ErrorCode, message: str, at: datetime, run_id: str | None = None) -> None:
        """The run failed: ``code`` (``export_failed`` unless more precise) and the cause.

        The file fields (planned ``rowCount``, ``byteSize``, ``filePath``,
        ``downloadUrl``, ``expiresAt``) go: there is no file. ``rowsWritten`` stays.
        """
        self.record_transition(job_id, JobStatus.FAILED, {"errorCode": code.value, "error": message,
                                                          "completedAt": at, "runId": run_id}, drop=FILE_FIELDS,
                               actor="system:run")

    def expired(self, job_ids: list[str], pipe: Any = None) -> None:
        """Retention removed these jobs' files: status ``expired``, no ``downloadUrl``.

        The hash lives on for the store's TTL (retention + 7 days) from now, so
        it outlasts its file. Queued on ``pipe`` when given.
        """
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        for job_id in job_ids:
            self.record_transition(job_id, JobStatus.EXPIRED, drop=("downloadUrl",), pipe=target,
                                   actor="system:retention")
        if pipe is None:
            target.execute()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
