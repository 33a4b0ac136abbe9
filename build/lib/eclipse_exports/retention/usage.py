"""Workspace storage usage against its quota, kept as a Redis counter instead of a listing per request.

Each workspace's export bytes are one integer, ``eclipse:exports:usage:{workspaceId}``:

- plus the bytes of every part (or single put) as soon as S3 holds them, so an
  incomplete upload counts while it exists;
- minus an aborted upload's bytes, a deleted file's size, a replaced file's old size;
- set from the S3 listing by the clean-up run (reconciliation, which corrects
  any drift: a worker killed between a part and its count, a counter lost with
  Redis), and from a listing of the workspace the first time it is read.

Only ``exports/`` counts (on-demand files, reports included); scheduled
reports under ``reports/`` are the product's own and do not. The quota is
``ECLIPSE_WORKSPACE_QUOTA_BYTES``, overridden per workspace by
``ECLIPSE_WORKSPACE_QUOTA_OVERRIDES`` (``ws_a=10737418240,ws_b=1073741824``).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from eclipse_exports.queue.keys import workspace_usage_key
from eclipse_exports.storage.client import ExportStorage
from eclipse_exports.storage.multipart import StoredBytesCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuotaPolicy:
    """Bytes of export files a workspace may hold: ``default_bytes`` unless ``overrides`` names it."""

    default_bytes: int = 5_368_709_120
    overrides: Mapping[str, int] = field(default_factory=dict)

    def quota_for(self, workspace_id: str) -> int:
        """The workspace's quota in bytes."""
        return self.overrides.get(workspace_id, self.default_bytes)


class WorkspaceUsage:
    """The per-workspace byte counters in Redis; ``storage`` answers a first read by listing.

    ``client`` may decode responses or not. Every method raises
    ``redis.RedisError`` on an outage except the callback of :meth:`recorder`,
    which must never fail an upload.
    """

    def __init__(self, client: redis.Redis, storage: ExportStorage) -> None:
        self.client, self.storage = client, storage

    def add(self, workspace_id: str, delta: int) -> None:
        """Change the workspace's counter by ``delta`` bytes (negative for removals)."""
        if delta:
            self.client.incrby(workspace_usage_key(workspace_id), int(delta))

    def recorder(self, workspace_id: str) -> StoredBytesCallback:
        """An ``on_stored`` callback for an upload; a Redis error is logged (reconciliation repairs it)."""

        def record(delta: int) -> None:
            try:
                self.add(workspace_id, delta)
            except redis.RedisError as exc:
                log.warning("usage counter of %s not updated by %+d bytes: %s", workspace_id, delta, exc)

        return record

    def bytes_used(self, workspace_id: str) -> int:
        """The workspace's export bytes, incomplete uploads included.

        Reads the counter; a workspace never counted yet is counted from the
        S3 listing once (botocore errors propagate).
        """
        value = self.client.get(workspace_usage_key(workspace_id))
        if value is not None:
            return int(value)
        listed = self.storage.workspace_export_bytes(workspace_id)
        # NX: an upload that counted its first part meanwhile keeps its own figure; reconciliation settles it.
        self.client.set(workspace_usage_key(workspace_id), listed, nx=True)
        return int(self.client.get(workspace_usage_key(workspace_id)) or listed)

    def reconcile(self, workspace_id: str, listed_bytes: int) -> int:
        """Set the counter to ``listed_bytes`` (from a listing); returns the drift it corrected."""
        previous = self.client.set(workspace_usage_key(workspace_id), int(listed_bytes), get=True)
        return int(listed_bytes) - int(previous or 0)

    def forget(self, workspace_id: str) -> None:
        """Drop the counter of a workspace whose files are all gone (a purged workspace)."""
        self.client.delete(workspace_usage_key(workspace_id))
