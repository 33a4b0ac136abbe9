"""A failed job's leftovers: its incomplete upload and any file its failed run completed."""

from dataclasses import dataclass

import redis

from eclipse_exports.models import JobStatus
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.deleter import ACTIVE_STATUSES
from eclipse_exports.retention.usage import WorkspaceUsage
from eclipse_exports.storage.client import ExportStorage


@dataclass
class DiscardOutcome:
    """What :func:`discard_job_files` removed for one failed job."""

    uploads_aborted: int = 0
    files_deleted: int = 0
    bytes_removed: int = 0
    skipped: str | None = None


def discard_job_files(storage: ExportStorage, client: redis.Redis, job_id: str, workspace_id: str, run_id: str,
                      expected_key: str | None = None) -> DiscardOutcome:
    """Abort the job's incomplete uploads and delete a file its failed run may have completed.

    Looks for uploads under the workspace's ``exports/`` whose key parses to
    ``job_id``, and for an object at ``expected_key`` (the key the run
    writes) or the status hash's ``filePath``. Leaves everything alone when
    the job is ``completed`` (its file is delivered) or another run of it is
    running (its status names a different ``runId``). The usage counter loses what was removed.
    Raises botocore and Redis errors (the caller's sensor retries on its next tick).
    """
    store = JobStatusStore(client)
    usage = WorkspaceUsage(client, storage)
    outcome = DiscardOutcome()
    fields = store.get(job_id)
    status = fields.get("status")
    if status == JobStatus.COMPLETED.value or (status in ACTIVE_STATUSES and fields.get("runId") not in (None, run_id)):
        outcome.skipped = f"the job is {status} (run {fields.get('runId')})"
        return outcome
    for upload in storage.iter_uploads(storage.exports_prefix(workspace_id)):
        parsed = storage.parse_key(upload["Key"])
        if parsed is None or parsed.job_id != job_id:
            continue
        size = storage.upload_bytes(upload["Key"], upload["UploadId"])
        storage.abort_upload(upload["Key"], upload["UploadId"])
        usage.add(workspace_id, -size)
        outcome.uploads_aborted += 1
    for key in {k for k in (expected_key, fields.get("filePath")) if k}:
        parsed = storage.parse_key(key)
        if parsed is None or parsed.job_id != job_id or parsed.workspace_id != workspace_id:
            continue
        size = storage.object_size(key)
        if size is None:
            continue
        storage.delete(key, workspace_id=workspace_id)
        usage.add(workspace_id, -size)
        outcome.files_deleted += 1
        outcome.bytes_removed += size
    return outcome
