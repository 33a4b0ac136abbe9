"""The one object of an export job: its key (dated by the request, so every run writes the same one), its
upload with the job's metadata and usage counting, and replacing or removing what was there before."""

from datetime import datetime

from eclipse_exports.models import ExportRequest
from eclipse_exports.retention.usage import WorkspaceUsage
from eclipse_exports.storage.client import ExportStorage
from eclipse_exports.storage.multipart import MultipartUpload


def job_file_key(storage: ExportStorage, request: ExportRequest, key_time: datetime) -> str:
    """The object key of the request's one file: dated by its ``createdAt``, else by ``key_time``
    (its pick-up time), so every run of the job writes the same key."""
    return storage.export_key(request.workspace_id, request.resource_type, request.id, request.extension,
                              request.created_at_utc or key_time)


class JobFile:
    """The one object of a job: its key, its upload (metadata, usage counting) and replacing what was there."""

    def __init__(self, request: ExportRequest, storage: ExportStorage, usage: WorkspaceUsage,
                 key_time: datetime) -> None:
        self.request, self.storage, self.usage = request, storage, usage
        self.workspace_id = request.workspace_id
        self.key = job_file_key(storage, request, key_time)
        self.replaced_bytes = 0

    def upload_options(self) -> dict:
        """``metadata`` and ``on_stored`` for the job's upload; an object already at the key (an earlier
        run of the job) is measured first, as it will be replaced."""
        self.replaced_bytes = self.storage.object_size(self.key) or 0
        return {"metadata": self.storage.export_metadata(self.workspace_id, self.request.resource_type,
                                                         self.request.id),
                "on_stored": self.usage.recorder(self.workspace_id)}

    def open(self, content_type: str) -> MultipartUpload:
        """The upload stream of the job's file (see :meth:`upload_options`)."""
        return self.storage.open_upload(self.key, content_type, self.key.rsplit("/", 1)[-1],
                                        **self.upload_options())

    def drop_earlier(self, previous_key: str | None) -> None:
        """After completion: the replaced object no longer counts, an earlier file of the job under
        another key (a run before keys came from the request) is deleted, and an incomplete upload an earlier
        run of the job left (its worker died; the run-failure sensor leaves it alone once this run has started)
        is aborted."""
        self.usage.add(self.workspace_id, -self.replaced_bytes)
        for upload in self.storage.iter_uploads(self.storage.exports_prefix(self.workspace_id)):
            parsed = self.storage.parse_key(upload["Key"])
            if parsed is not None and parsed.job_id == self.request.id:
                size = self.storage.upload_bytes(upload["Key"], upload["UploadId"])
                self.storage.abort_upload(upload["Key"], upload["UploadId"])
                self.usage.add(self.workspace_id, -size)
        if not previous_key or previous_key == self.key:
            return
        parsed = self.storage.parse_key(previous_key)
        if parsed is None or parsed.job_id != self.request.id or parsed.workspace_id != self.workspace_id:
            return
        size = self.storage.object_size(previous_key)
        if size is not None:
            self.storage.delete(previous_key, workspace_id=self.workspace_id)
            self.usage.add(self.workspace_id, -size)

    def remove(self) -> None:
        """Delete the completed file (it could not be delivered)."""
        size = self.storage.object_size(self.key)
        if size is not None:
            self.storage.delete(self.key, workspace_id=self.workspace_id)
            self.usage.add(self.workspace_id, -size)
