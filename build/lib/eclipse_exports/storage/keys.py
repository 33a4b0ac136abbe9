"""Object keys: the one place that builds and parses them.

Keys follow the interface (docs/interface.md) under the configured prefix:
``{prefix}/workspaces/{workspaceId}/exports/{YYYYMMDDTHHMMSSZ}-{resourceType}-{id}.{ext}`` and
``{prefix}/workspaces/{workspaceId}/reports/{YYYY-MM-DD}-executive-report.html``.
Ids are checked against the id pattern before they reach a key, so
no request value can climb out of its workspace's prefix; :meth:`ObjectKeys.parse_key`
is the inverse, used by retention to find a file's workspace and job.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from eclipse_exports.models import ID_RE, ResourceType

EXPORT_EXTENSIONS = ("csv", "json", "jsonl", "parquet", "html", "csv.gz", "json.gz", "jsonl.gz")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_EXPORT_NAME = re.compile(
    r"(?P<stamp>\d{8}T\d{6}Z)-(?P<resource>alerts|infringements|actions|report)-(?P<job>[A-Za-z0-9_-]{1,64})"
    r"\.(?P<ext>" + "|".join(re.escape(e) for e in EXPORT_EXTENSIONS) + ")"
)
_REPORT_NAME = re.compile(r"(?P<week>\d{4}-\d{2}-\d{2})-executive-report\.html")
# User metadata written with every export file, so its job is known without parsing the key.
METADATA_JOB_ID, METADATA_WORKSPACE_ID, METADATA_RESOURCE_TYPE = "eclipse-job-id", "eclipse-workspace-id", \
    "eclipse-resource-type"


def _checked_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError(f"{kind} {value!r} does not match the CONTRACT id pattern")
    return value


@dataclass(frozen=True)
class ParsedKey:
    """What an object key under ``{prefix}/workspaces/`` says about its file.

    ``kind`` is ``export`` (on-demand file: ``job_id``, ``resource_type`` and
    the key's ``stamp`` are set) or ``report`` (scheduled weekly report:
    ``week_start`` is set).
    """

    key: str
    workspace_id: str
    kind: Literal["export", "report"]
    job_id: str | None = None
    resource_type: ResourceType | None = None
    stamp: datetime | None = None
    week_start: date | None = None



class ObjectKeys:
    """Builds and parses the object keys of every workspace under one deployment ``prefix`` (``ECLIPSE_S3_PREFIX``).

    Pure string work, no S3 call: :class:`~eclipse_exports.storage.client.ExportStorage` is one,
    and everything that names an object asks it.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.strip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def workspaces_prefix(self) -> str:
        """``{prefix}/workspaces/`` — every file the project writes lies under it, and nothing else is touched."""
        return self._key("workspaces") + "/"

    def workspace_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/`` — everything of one workspace lies under it."""
        return self._key("workspaces", _checked_id("workspace id", workspace_id)) + "/"

    def exports_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/exports/`` — the on-demand files the quota counts."""
        return self.workspace_prefix(workspace_id) + "exports/"

    def export_key(self, workspace_id: str, resource: ResourceType, job_id: str, extension: str,
                   at: datetime) -> str:
        """Object key of an on-demand export file (docs/interface.md section 4).

        ``at`` is the request's moment (its ``createdAt``, else its pick-up
        time), never the run's start, so every run of one job writes the same key.
        """
        stamp = at.astimezone(UTC).strftime(_STAMP_FORMAT)
        if extension not in EXPORT_EXTENSIONS:
            raise ValueError(f"unknown export file extension {extension!r}")
        name = f"{stamp}-{ResourceType(resource).value}-{_checked_id('job id', job_id)}.{extension}"
        return self.workspace_prefix(workspace_id) + "exports/" + name

    def report_key(self, workspace_id: str, week_start: date) -> str:
        """Object key of a scheduled weekly executive report."""
        return self.workspace_prefix(workspace_id) + f"reports/{week_start.isoformat()}-executive-report.html"

    def parse_key(self, key: str) -> ParsedKey | None:
        """The workspace, kind and job of a key written by :meth:`export_key` or :meth:`report_key`.

        ``None`` for anything else (outside ``{prefix}/workspaces/``, an unknown
        folder, a malformed name or id): such a key is never the project's to delete.
        """
        root = self.workspaces_prefix()
        if not key.startswith(root):
            return None
        parts = key[len(root):].split("/")
        if len(parts) != 3 or not ID_RE.fullmatch(parts[0]):
            return None
        workspace_id, folder, name = parts
        if folder == "exports" and (m := _EXPORT_NAME.fullmatch(name)):
            try:
                stamp = datetime.strptime(m["stamp"], _STAMP_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                return None
            return ParsedKey(key, workspace_id, "export", job_id=m["job"], resource_type=ResourceType(m["resource"]),
                             stamp=stamp)
        if folder == "reports" and (m := _REPORT_NAME.fullmatch(name)):
            try:
                week_start = date.fromisoformat(m["week"])
            except ValueError:
                return None
            return ParsedKey(key, workspace_id, "report", week_start=week_start)
        return None

    @staticmethod
    def export_metadata(workspace_id: str, resource: ResourceType, job_id: str) -> dict[str, str]:
        """User metadata for an export file: its job id, workspace and resource (``x-amz-meta-eclipse-*``)."""
        return {METADATA_JOB_ID: job_id, METADATA_WORKSPACE_ID: workspace_id,
                METADATA_RESOURCE_TYPE: ResourceType(resource).value}
