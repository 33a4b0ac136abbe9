"""The export request and job models: docs/interface.md sections 2 and 3 as pydantic types.

:class:`ExportRequest` is the one gate every request passes, whether it comes
from the Redis stream (as JSON bytes) or from Dagster run config (as a dict).
Validation is strict: JSON types are not coerced, unknown fields are refused,
filters and options must fit the resource and format.
"""

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FILTER_VALUES = 100


class ResourceType(StrEnum):
    """What a request exports."""

    ALERTS = "alerts"
    INFRINGEMENTS = "infringements"
    ACTIONS = "actions"
    AUDIT_LOGS = "audit_logs"
    EXPORT_AUDIT = "export_audit"
    REPORT = "report"


class ExportFormat(StrEnum):
    """File format; ``html`` only for reports, the others only for data resources."""

    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"
    PARQUET = "parquet"
    HTML = "html"


class JobStatus(StrEnum):
    """Lifecycle of an export job in its status hash (docs/interface.md section 3)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ErrorCode(StrEnum):
    """Machine-readable reason for a ``rejected`` or ``failed`` job."""

    INVALID_REQUEST = "invalid_request"
    FORBIDDEN = "forbidden"
    UNKNOWN_WORKSPACE = "unknown_workspace"
    WORKSPACE_INACTIVE = "workspace_inactive"
    QUOTA_EXCEEDED = "quota_exceeded"
    TOO_LARGE = "too_large"
    EXPORT_FAILED = "export_failed"


SEVERITIES = ("low", "medium", "high", "critical")
STATUS_VOCABULARY: dict[ResourceType, tuple[str, ...]] = {
    ResourceType.ALERTS: ("new", "acknowledged", "resolved", "dismissed"),
    ResourceType.INFRINGEMENTS: ("open", "in_review", "takedown_requested", "resolved", "rejected"),
    ResourceType.ACTIONS: ("pending", "in_progress", "completed", "failed"),
}
DATA_FORMATS = (ExportFormat.CSV, ExportFormat.JSON, ExportFormat.JSONL, ExportFormat.PARQUET)
AUDIT_RESOURCES = frozenset({ResourceType.AUDIT_LOGS, ResourceType.EXPORT_AUDIT})
"""Resources only owners and admins may export."""
# A dotted verb (`alert.acknowledged`) or a prefix of one followed by `.*` (`member.*`).
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$"

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN, strict=True)]
Severity = Literal["low", "medium", "high", "critical"]
# No NUL: PostgreSQL text cannot hold it, so such a filter value could never match anything.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$", strict=True)]
AuditAction = Annotated[str, StringConstraints(max_length=200, pattern=ACTION_PATTERN, strict=True)]


class _Strict(BaseModel):
    # Only the interface's (alias) names are accepted: `workspace_id` in a payload is an unknown field.
    # Schemas are built on first validation, not at import: a CLI command that never validates a request
    # (status, url, jobs) should not pay for building them.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class ExportFilters(_Strict):
    """Optional row filters; ``from`` is inclusive and ``to`` exclusive, both with an offset.

    Dates filter ``detected_at`` (alerts, infringements), ``created_at`` (actions), ``occurred_at``
    (audit_logs) or the entry's time (export_audit). ``action`` (dotted verbs, or ``prefix.*``) and ``actor``
    (user ids) filter audit_logs only.
    """

    severity: list[Severity] | None = Field(None, min_length=1, max_length=MAX_FILTER_VALUES)
    status: list[ShortText] | None = Field(None, min_length=1, max_length=MAX_FILTER_VALUES)
    brand: list[ShortText] | None = Field(None, min_length=1, max_length=MAX_FILTER_VALUES)
    date_from: AwareDatetime | None = Field(None, alias="from")
    date_to: AwareDatetime | None = Field(None, alias="to")
    action: list[AuditAction] | None = Field(None, min_length=1, max_length=MAX_FILTER_VALUES)
    actor: list[Identifier] | None = Field(None, min_length=1, max_length=MAX_FILTER_VALUES)

    @field_validator("date_from", "date_to")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # Every database compares UTC instants; SQLite would otherwise compare local wall-clock text.
        return None if value is None else _to_utc(value)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.date_from and self.date_to and not self.date_from < self.date_to:
            raise ValueError("'from' must be earlier than 'to'")
        return self


class ExportOptions(_Strict):
    """File options: gzip compression (not for parquet/html) and Excel-friendly CSV."""

    compression: Literal["none", "gzip"] = "none"
    excel_compatible: bool = Field(False, alias="excelCompatible")


def _repeated_key(text: str) -> str | None:
    """The first key that one JSON object of ``text`` (valid JSON) names twice, at any depth, else ``None``."""
    repeated: list[str] = []

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        if len(set(keys)) < len(keys) and not repeated:
            repeated.append(next(key for n, key in enumerate(keys) if key in keys[:n]))
        return dict(pairs)

    json.loads(text, object_pairs_hook=pairs_hook)
    return repeated[0] if repeated else None


class ExportRequest(_Strict):
    """One export request as carried by the ``payload`` field of a stream entry.

    Field names are the interface's camelCase names (aliases); Python code uses
    the snake_case attributes. Raises ``pydantic.ValidationError`` on any rule
    of docs/interface.md section 2 that fails.
    """

    id: Identifier
    workspace_id: Identifier = Field(alias="workspaceId")
    user_id: Identifier = Field(alias="userId")
    resource_type: ResourceType = Field(alias="resourceType")
    format: ExportFormat
    filters: ExportFilters = Field(default_factory=ExportFilters)
    options: ExportOptions = Field(default_factory=ExportOptions)
    delivery: Literal["download", "email"] = "download"
    created_at: datetime | None = Field(None, alias="createdAt")

    @field_validator("created_at")
    @classmethod
    def _created_at_in_utc(cls, value: datetime | None) -> datetime | None:
        # A value without offset is taken as UTC.
        return None if value is None else _to_utc(value if value.tzinfo else value.replace(tzinfo=UTC))

    @model_validator(mode="after")
    def _fits_resource_and_format(self) -> Self:
        resource, fmt = self.resource_type, self.format
        if resource is ResourceType.REPORT and fmt is not ExportFormat.HTML:
            raise ValueError("a report is exported as 'html' only")
        if resource is not ResourceType.REPORT and fmt not in DATA_FORMATS:
            raise ValueError(f"{resource.value} export as 'csv', 'json', 'jsonl' or 'parquet', not '{fmt.value}'")
        f = self.filters
        if resource not in (ResourceType.ALERTS, ResourceType.INFRINGEMENTS):
            for name in ("severity", "brand"):
                if getattr(f, name) is not None:
                    raise ValueError(f"filter '{name}' applies to alerts and infringements only")
        if resource is not ResourceType.AUDIT_LOGS:
            for name in ("action", "actor"):
                if getattr(f, name) is not None:
                    raise ValueError(f"filter '{name}' applies to audit_logs only")
        if f.status is not None:
            allowed = STATUS_VOCABULARY.get(resource)
            if allowed is None:
                raise ValueError(f"filter 'status' does not apply to {resource.value}")
            wrong = [s for s in f.status if s not in allowed]
            if wrong:
                raise ValueError(
                    f"filter 'status' has {', '.join(map(repr, wrong))}; {resource.value} statuses are "
                    + ", ".join(allowed)
                )
        if self.options.compression == "gzip" and fmt in (ExportFormat.PARQUET, ExportFormat.HTML):
            raise ValueError(f"compression 'gzip' is not available for '{fmt.value}'")
        if self.options.excel_compatible and fmt is not ExportFormat.CSV:
            raise ValueError("option 'excelCompatible' applies to 'csv' only")
        return self

    @classmethod
    def from_payload(cls, payload: bytes | str) -> "ExportRequest":
        """Parse and validate the raw JSON text of a stream entry's ``payload``.

        Raises :class:`InvalidRequest` with a readable reason for oversized,
        non-UTF-8, non-JSON, non-object or rule-breaking payloads.
        """
        raw = payload.encode() if isinstance(payload, str) else payload
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise InvalidRequest(f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            request = cls.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation_error(exc)) from None
        except ValueError as exc:  # the JSON parser's own errors (e.g. recursion limit)
            raise InvalidRequest(f"payload is not valid JSON: {exc}") from None
        if (twice := _repeated_key(text)) is not None:
            # JSON parsers keep the last of two equal keys; the web app and this project could read different ids.
            raise InvalidRequest(f"payload names {twice!r} twice; each field may appear once")
        return request

    def to_payload(self) -> str:
        """The request as the interface's JSON (camelCase, unset optionals left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @property
    def extension(self) -> str:
        """File name extension, ``.gz`` included when compressed (``csv.gz``)."""
        ext = self.format.value
        return f"{ext}.gz" if self.options.compression == "gzip" else ext

    @property
    def created_at_utc(self) -> datetime | None:
        """``createdAt`` (already normalized to UTC by validation)."""
        return self.created_at


# Dates a request may name: periods and file names are computed from them (a week either side, a key's
# timestamp), so years 1 and 9999 would overflow at run time instead of failing here.
EARLIEST_DATE, LATEST_DATE = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    out_of_range = ValueError(f"date must be from {EARLIEST_DATE:%Y-%m-%d} to before {LATEST_DATE:%Y-%m-%d} (UTC)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise out_of_range from None
    if not EARLIEST_DATE <= value < LATEST_DATE:
        raise out_of_range
    return value


class InvalidRequest(ValueError):
    """A payload that breaks docs/interface.md section 2; ``str(exc)`` is the readable reason."""


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's error list into one readable line per problem, joined by '; '."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """Format a datetime as the interface's ISO-8601 UTC string ``YYYY-MM-DDTHH:MM:SSZ``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
