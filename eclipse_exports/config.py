"""Runtime settings read from the environment (docs/interface.md section 5).

Every setting has the interface's default, so a bare environment gives a working
local setup: an SQLite source database in the local data folder, Redis on
localhost and the ``eclipse-exports`` bucket.
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Settings fields read from a variable other than ECLIPSE_{FIELD} (for naming it in an error).
_OTHER_VARIABLES = {"s3_endpoint_url": "AWS_ENDPOINT_URL"}
_OVERRIDES = "ECLIPSE_WORKSPACE_QUOTA_OVERRIDES"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting's value is not usable; the message names the variable, its value and what it must be."""


def flag(env: Mapping[str, str], variable: str, default: bool) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case), ``default`` when unset or empty.

    Raises :class:`SettingsError` for anything else (a typo must not silently mean yes).
    """
    text = (env.get(variable) or "").strip().lower()
    if not text:
        return default
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise SettingsError(f"{variable}={env.get(variable)!r}: must be one of {', '.join(_TRUE + _FALSE)}")


def data_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """``ECLIPSE_DATA_DIR``, else ``./.local``, as an absolute path (the local data folder)."""
    env = os.environ if env is None else env
    return Path(env.get("ECLIPSE_DATA_DIR") or Path.cwd() / ".local").resolve()


class Settings(BaseModel):
    """Resolved configuration of one deployment.

    Built by :meth:`from_env`; tests build it directly with their throwaway
    services. Sizes are in bytes, durations in the unit their name says.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    data_dir: Path = Field(description="Local data folder (SQLite file, service data).")
    database_url: str = Field(description="SQLAlchemy URL of the Eclipse source database.")
    redis_url: str = Field(description="Redis holding the request stream and job status hashes.")
    s3_bucket: str = "eclipse-exports"
    s3_prefix: str = Field("", pattern=r"^/?([A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?)?$",
                           description="Folder of every key in the bucket: path segments of letters, digits, "
                                       "'.', '_' and '-', none starting with '.' (no '..' escapes the folder).")
    s3_endpoint_url: str | None = None
    retention_hours: int = Field(72, gt=0)
    download_url_ttl_seconds: int = Field(3600, gt=0)
    max_export_rows: int = Field(10_000_000, gt=0)
    workspace_quota_bytes: int = Field(5_368_709_120, gt=0)
    workspace_quota_overrides: dict[str, int] = Field(default_factory=dict,
                                                      description="workspace id -> quota in bytes")
    smtp_url: str | None = None
    report_retention_days: int = Field(90, gt=0)
    reports_per_run: int = Field(20, gt=0, le=500, description="Executive reports one Dagster run renders.")
    report_cron: str = Field("0 6 * * 1", description="Cron (UTC) of the weekly executive reports.")
    report_pdf: bool = Field(True, description="Whether the weekly report is also stored and mailed as a PDF.")
    chromium_path: str | None = Field(None, description="The Chromium executable that prints the report's PDF; "
                                                        "unset: `chromium` (Debian's) on PATH.")
    pdf_warm_seconds: int = Field(120, ge=0, le=3600, description="How long a run worker keeps its PDF browser "
                                  "after a report run, for the next one (0: closed at the run's end).")
    sensor_long_poll_ms: int = Field(3500, ge=0, le=10_000, description="How long a request-sensor tick waits "
                                                                         "for a new request (milliseconds).")
    brief_backlog_growth_percent: float = Field(5.0, gt=0, description="Backlog growth the brief calls out.")
    brief_success_rate_percent: float = Field(60.0, ge=0, le=100, description="Takedown success rate under which "
                                              "the brief calls it out.")
    brief_success_drop_points: float = Field(5.0, gt=0, description="Fall of the success rate, in percentage "
                                             "points, the brief calls out.")
    brief_critical_rise_percent: float = Field(20.0, gt=0, description="Rise of new critical alerts the brief "
                                               "calls out.")
    brief_oldest_open_days: int = Field(30, gt=0, description="Age of the oldest open infringement the brief "
                                        "calls out.")
    queue_lag_alert_seconds: int = Field(300, gt=0, description="Oldest unread request age that fails the queue "
                                                                "check (a warning; an error past twice it).")
    queue_failure_alert_percent: float = Field(10.0, gt=0, le=100, description="Share of the last hour's "
                                               "finished jobs that may fail before the failure check warns.")
    s3_sse: str = Field("AES256", pattern=r"^(AES256|aws:kms|none)$",
                        description="Server-side encryption of every object written: AES256, aws:kms or none.")
    s3_sse_kms_key_id: str | None = Field(None, description="KMS key (id, ARN or alias) with s3_sse=aws:kms.")
    allow_plain_http: bool = Field(False, description="Accept an http:// S3 endpoint outside 127.0.0.1.")
    audit_signing_key: str | None = Field(None, repr=False, description="Ed25519 private key (PEM) that signs "
                                          "the audit archives; unset: a generated key in the data folder.")
    audit_retention_days: int = Field(400, gt=0, description="How long a day's audit archive lives.")
    run_history_days: int = Field(30, gt=0, description="Days Dagster keeps finished runs, their event logs and "
                                                        "compute logs (dagster_history_cleanup_job).")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the interface's environment variables, applying the interface's defaults.

        ``ECLIPSE_DATA_DIR`` (default ``./.local``) locates the default SQLite
        file. Raises :class:`SettingsError` (a ``ValueError``) naming the variable for a non-numeric or
        out-of-range number, an unknown choice or yes/no value, or a malformed ``ECLIPSE_WORKSPACE_QUOTA_OVERRIDES``.
        """
        env = os.environ if env is None else env
        try:
            return cls._from_env(env)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first.get("loc") else "?"
            variable = _OTHER_VARIABLES.get(field, f"ECLIPSE_{field.upper()}")
            raise SettingsError(f"{variable}={env.get(variable)!r}: {first['msg']}") from None

    @classmethod
    def _from_env(cls, env: Mapping[str, str]) -> "Settings":
        data_dir = data_dir_from_env(env)
        return cls(
            data_dir=data_dir,
            database_url=env.get("ECLIPSE_DATABASE_URL") or f"sqlite:///{data_dir / 'eclipse.db'}",
            redis_url=env.get("ECLIPSE_REDIS_URL") or "redis://localhost:6379/0",
            s3_bucket=env.get("ECLIPSE_S3_BUCKET") or "eclipse-exports",
            s3_prefix=env.get("ECLIPSE_S3_PREFIX") or "",
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            retention_hours=env.get("ECLIPSE_RETENTION_HOURS") or 72,
            download_url_ttl_seconds=env.get("ECLIPSE_DOWNLOAD_URL_TTL_SECONDS") or 3600,
            max_export_rows=env.get("ECLIPSE_MAX_EXPORT_ROWS") or 10_000_000,
            workspace_quota_bytes=env.get("ECLIPSE_WORKSPACE_QUOTA_BYTES") or 5_368_709_120,
            workspace_quota_overrides=parse_quota_overrides(env.get("ECLIPSE_WORKSPACE_QUOTA_OVERRIDES") or ""),
            smtp_url=env.get("ECLIPSE_SMTP_URL") or None,
            report_retention_days=env.get("ECLIPSE_REPORT_RETENTION_DAYS") or 90,
            reports_per_run=env.get("ECLIPSE_REPORTS_PER_RUN") or 20,
            report_cron=env.get("ECLIPSE_REPORT_CRON") or "0 6 * * 1",
            report_pdf=flag(env, "ECLIPSE_REPORT_PDF", True),
            chromium_path=env.get("ECLIPSE_CHROMIUM_PATH") or None,
            pdf_warm_seconds=env.get("ECLIPSE_PDF_WARM_SECONDS") or 120,
            brief_backlog_growth_percent=env.get("ECLIPSE_BRIEF_BACKLOG_GROWTH_PERCENT") or 5.0,
            brief_success_rate_percent=env.get("ECLIPSE_BRIEF_SUCCESS_RATE_PERCENT") or 60.0,
            brief_success_drop_points=env.get("ECLIPSE_BRIEF_SUCCESS_DROP_POINTS") or 5.0,
            brief_critical_rise_percent=env.get("ECLIPSE_BRIEF_CRITICAL_RISE_PERCENT") or 20.0,
            brief_oldest_open_days=env.get("ECLIPSE_BRIEF_OLDEST_OPEN_DAYS") or 30,
            queue_lag_alert_seconds=env.get("ECLIPSE_QUEUE_LAG_ALERT_SECONDS") or 300,
            queue_failure_alert_percent=env.get("ECLIPSE_QUEUE_FAILURE_ALERT_PERCENT") or 10.0,
            s3_sse=env.get("ECLIPSE_S3_SSE") or "AES256",
            s3_sse_kms_key_id=env.get("ECLIPSE_S3_SSE_KMS_KEY_ID") or None,
            allow_plain_http=flag(env, "ECLIPSE_ALLOW_PLAIN_HTTP", False),
            audit_signing_key=env.get("ECLIPSE_AUDIT_SIGNING_KEY") or None,
            audit_retention_days=env.get("ECLIPSE_AUDIT_RETENTION_DAYS") or 400,
            run_history_days=env.get("ECLIPSE_RUN_HISTORY_DAYS") or 30,
            sensor_long_poll_ms=env.get("ECLIPSE_SENSOR_LONG_POLL_MS") or 3500,
        )


def parse_quota_overrides(text: str) -> dict[str, int]:
    """Parse ``ws_a=10737418240,ws_b=1_073_741_824`` into ``{workspace id: bytes}``.

    Empty text gives ``{}``. Raises :class:`SettingsError` (a ``ValueError``) naming the bad entry for a
    malformed pair, an id outside the pattern of docs/interface.md or a non-positive size.
    """
    from eclipse_exports.models import ID_RE  # the request models cost a CLI command ~0.1 s it may not need

    overrides: dict[str, int] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        workspace_id, sep, size = (p.strip() for p in entry.partition("="))
        if not sep or not ID_RE.fullmatch(workspace_id):
            raise SettingsError(f"{_OVERRIDES}: quota override {entry!r} is not 'workspaceId=bytes'")
        try:
            quota = int(size)
        except ValueError:
            raise SettingsError(f"{_OVERRIDES}: quota override {entry!r}: {size!r} is not a whole number of bytes") \
                from None
        if quota <= 0:
            raise SettingsError(f"{_OVERRIDES}: quota override {entry!r}: the quota must be positive")
        overrides[workspace_id] = quota
    return overrides


# Up to the last '@' of the URL: passwords may hold '/', '@' and most else (drivers split on the last '@').
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>\S+)@")
_SECRET_PARAMETERS = re.compile(r"(?i)(?P<name>\b(?:password|passwd|pwd|secret|token|api_key|apikey)=)[^&\s]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with URL credentials and the given secret values masked.

    ``scheme://user:password@host`` becomes ``scheme://***@host`` (everything up
    to the URL's last ``@``), ``password=…``-style query parameters are masked; every
    non-empty string in ``secrets`` (for example the S3 secret key) becomes
    ``***``. Used on every error message that leaves the process.
    """
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _SECRET_PARAMETERS.sub(r"\g<name>***", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ECLIPSE_AUDIT_SIGNING_KEY")
URL_VARIABLES = ("ECLIPSE_DATABASE_URL", "ECLIPSE_REDIS_URL", "ECLIPSE_SMTP_URL")


def known_secrets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Secret values present in the environment that must never be printed.

    The S3 secret key and session token, and the passwords inside the
    configured database, Redis and SMTP URLs (so even a password the URL
    pattern of :func:`redact` cannot see, one with a space say, is masked).
    """
    env = os.environ if env is None else env
    secrets = [v for k in SECRET_VARIABLES if (v := env.get(k))]
    for name in URL_VARIABLES:
        url = env.get(name) or ""
        scheme, sep, rest = url.partition("://")
        userinfo, at, _host = rest.rpartition("@")
        if sep and at and ":" in userinfo:
            secrets.append(unquote(userinfo.split(":", 1)[1]))
    return tuple(secrets)
