"""Object keys: the one place that builds and parses them.

Keys follow the interface (docs/interface.md) under the configured prefix:
``{prefix}/workspaces/{workspaceId}/exports/{YYYYMMDDTHHMMSSZ}-{resourceType}-{id}.{ext}`` and
``{prefix}/workspaces/{workspaceId}/reports/{YYYY-MM-DD}-executive-report.html`` (and ``.pdf`` beside it) and
``{prefix}/workspaces/{workspaceId}/audit/{YYYY-MM-DD}.jsonl.gz`` (the export audit trail's daily archive).
Ids are checked against the id pattern before they reach a key, so
no request value can climb out of its workspace's prefix; :meth:`ObjectKeys.parse_key`
is the inverse, used by retention to find a file's workspace and job, and :meth:`ObjectKeys.check_key` is the
one check every presign and delete passes: a key read from somewhere else (a status hash the web app can
write, say) must lie under its own workspace's prefix.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from eclipse_exports.models import ID_RE, ResourceType

EXPORT_EXTENSIONS = ("csv", "json", "jsonl", "parquet", "html", "csv.gz", "json.gz", "jsonl.gz")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_EXPORT_NAME = re.compile(
    r"(?P<stamp>\d{8}T\d{6}Z)-(?P<resource>" + "|".join(r.value for r in ResourceType)
    + r")-(?P<job>[A-Za-z0-9_-]{1,64})"
    r"\.(?P<ext>" + "|".join(re.escape(e) for e in EXPORT_EXTENSIONS) + ")"
)
REPORT_EXTENSIONS = ("html", "pdf")
_REPORT_NAME = re.compile(r"(?P<week>\d{4}-\d{2}-\d{2})-executive-report\.(?:html|pdf)")
_AUDIT_NAME = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})\.jsonl\.gz")
# Anything that could walk out of a prefix or be read differently by S3 and by us.
_UNSAFE_KEY = re.compile(r"(^|/)\.{1,2}(/|$)|//|\\|[\x00-\x1f\x7f]")
# User metadata written with every export file, so its job is known without parsing the key.
METADATA_JOB_ID, METADATA_WORKSPACE_ID, METADATA_RESOURCE_TYPE = "eclipse-job-id", "eclipse-workspace-id", \
    "eclipse-resource-type"


class KeyRefused(ValueError):
    """An object key that may not be presigned or deleted for the workspace it was asked for.

    ``str(exc)`` is one readable line: the key, and why (a ``../`` in it, outside the workspace's prefix,
    not a key this project writes).
    """


def _checked_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError(f"{kind} {value!r} does not match the CONTRACT id pattern")
    return value


@dataclass(frozen=True)
class ParsedKey:
    """What an object key under ``{prefix}/workspaces/`` says about its file.

    ``kind`` is ``export`` (on-demand file: ``job_id``, ``resource_type`` and
    the key's ``stamp`` are set), ``report`` (scheduled weekly report:
    ``week_start`` is set) or ``audit`` (a day's archive of the export audit trail: ``day`` is set; never
    removed by export retention or a purge).
    """

    key: str
    workspace_id: str
    kind: Literal["export", "report", "audit"]
    job_id: str | None = None
    resource_type: ResourceType | None = None
    stamp: datetime | None = None
    week_start: date | None = None
    day: date | None = None



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

    def report_key(self, workspace_id: str, week_start: date, extension: str = "html") -> str:
        """Object key of a scheduled weekly executive report: its page (``html``) or its PDF (``pdf``)."""
        if extension not in REPORT_EXTENSIONS:
            raise ValueError(f"unknown report file extension {extension!r}")
        return self.workspace_prefix(workspace_id) + f"reports/{week_start.isoformat()}-executive-report.{extension}"

    def audit_prefix(self, workspace_id: str) -> str:
        """``{prefix}/workspaces/{workspaceId}/audit/`` — the daily archives of the workspace's export audit trail."""
        return self.workspace_prefix(workspace_id) + "audit/"

    def audit_key(self, workspace_id: str, day: date) -> str:
        """Object key of one day's archive of the workspace's export audit trail (``{YYYY-MM-DD}.jsonl.gz``)."""
        return self.audit_prefix(workspace_id) + f"{day.isoformat()}.jsonl.gz"

    def check_key(self, key: object, workspace_id: str, *, project_key: bool = True) -> ParsedKey | None:
        """The one check before a key is presigned or deleted: it must lie under ``workspace_id``'s own prefix.

        ``workspace_id`` is required: it is the tenant the caller acts for (a status hash's ``workspaceId``,
        the workspace being purged), never taken from the key itself. Refuses, with :class:`KeyRefused`, a
        non-text or empty key, a key with ``.``/``..`` segments, ``//``, a backslash or control characters, a
        key outside ``{prefix}/workspaces/{workspaceId}/``, and (with ``project_key``, the default) a key this
        project does not write (:meth:`parse_key` gives ``None``). Returns the parsed key (``None`` only when
        ``project_key`` is false and the key is not one of ours). Raises ``ValueError`` for a workspace id
        outside the id pattern.
        """
        prefix = self.workspace_prefix(workspace_id)
        if not isinstance(key, str) or not key:
            raise KeyRefused(f"object key {key!r} refused: it is empty or not text")
        if _UNSAFE_KEY.search(key):
            raise KeyRefused(f"object key {key!r} refused: it contains '../', './', '//', a backslash or a "
                             "control character")
        if not key.startswith(prefix):
            raise KeyRefused(f"object key {key!r} refused: it lies outside workspace '{workspace_id}' "
                             f"({prefix})")
        parsed = self.parse_key(key)
        if parsed is None and project_key:
            raise KeyRefused(f"object key {key!r} refused: not a file this project writes under {prefix}")
        return parsed

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
        if folder == "audit" and (m := _AUDIT_NAME.fullmatch(name)):
            try:
                day = date.fromisoformat(m["day"])
            except ValueError:
                return None
            return ParsedKey(key, workspace_id, "audit", day=day)
        return None

    @staticmethod
    def export_metadata(workspace_id: str, resource: ResourceType, job_id: str) -> dict[str, str]:
        """User metadata for an export file: its job id, workspace and resource (``x-amz-meta-eclipse-*``)."""
        return {METADATA_JOB_ID: job_id, METADATA_WORKSPACE_ID: workspace_id,
                METADATA_RESOURCE_TYPE: ResourceType(resource).value}
