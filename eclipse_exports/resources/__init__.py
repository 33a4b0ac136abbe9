"""Dagster resources: thin, typed handles on the source database, Redis and S3.

Each field left unset falls back to the interface's environment variable (via
:class:`eclipse_exports.config.Settings`), so ``definitions.py`` needs no
configuration dicts and no secret is ever part of resource config shown in
the Dagster UI. Tests set the fields to their throwaway services.
"""

from functools import cached_property
from typing import TYPE_CHECKING

import redis
from dagster import ConfigurableResource
from pydantic import PrivateAttr
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from sqlalchemy import Engine

from eclipse_exports.config import Settings
from eclipse_exports.delivery.email import MAX_ATTACHMENT_ENCODED_BYTES
from eclipse_exports.delivery.smtp import SmtpTarget, parse_smtp_url
from eclipse_exports.exports.run import ExportLimits
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.source.engine import source_engine
from eclipse_exports.storage.client import ExportStorage, storage_from_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _settings() -> Settings:
    return Settings.from_env()


# A Redis restart or failover takes seconds: ride it out (about 25 s in all) rather than fail a good export.
REDIS_RETRY = Retry(ExponentialWithJitterBackoff(base=0.2, cap=4.0), retries=10)


class SourceDatabaseResource(ConfigurableResource):
    """The Eclipse source database (read-only). ``url`` defaults to ``ECLIPSE_DATABASE_URL``."""

    url: str | None = None

    def get_engine(self) -> Engine:
        """A pooled SQLAlchemy engine, shared by every caller in this process."""
        return source_engine(self.url or _settings().database_url)


class RedisResource(ConfigurableResource):
    """Redis with the request stream and job status hashes. ``url`` defaults to ``ECLIPSE_REDIS_URL``."""

    url: str | None = None
    retention_hours: int | None = None
    _client: redis.Redis | None = PrivateAttr(default=None)

    def get_client(self) -> redis.Redis:
        """A client returning raw bytes (payloads need not be UTF-8).

        Commands that meet a refused or dropped connection or a timeout are retried with backoff for about
        25 s (:data:`REDIS_RETRY`), then raise ``redis.ConnectionError``/``TimeoutError``. A retried
        ``INCRBY`` of the usage counter may count twice; the clean-up run reconciles the counter.
        """
        if self._client is None:
            self._client = redis.Redis.from_url(self.url or _settings().redis_url, socket_timeout=30,
                                                health_check_interval=30, retry=REDIS_RETRY,
                                                retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        return self._client

    def get_status_store(self) -> JobStatusStore:
        """The job status hashes, with the TTL derived from the retention period."""
        return JobStatusStore(self.get_client(), self.retention_hours or _settings().retention_hours)


class ExportStorageResource(ConfigurableResource):
    """The export bucket. Unset fields come from ``ECLIPSE_S3_BUCKET``, ``ECLIPSE_S3_PREFIX``, ``AWS_ENDPOINT_URL``.

    Credentials and region are boto3's own (``AWS_ACCESS_KEY_ID`` …), never resource config.
    """

    bucket: str | None = None
    prefix: str | None = None
    endpoint_url: str | None = None

    @cached_property
    def _storage(self) -> ExportStorage:
        return storage_from_settings(_settings(), endpoint_url=self.endpoint_url, bucket=self.bucket,
                                     prefix=self.prefix)

    def get_storage(self) -> ExportStorage:
        """Keys, uploads, presigned URLs and deletes for the export bucket."""
        return self._storage


class ExportLimitsResource(ConfigurableResource):
    """Row limit, workspace quotas, retention, URL lifetime and the SMTP server for email delivery.

    Unset fields come from the environment (``ECLIPSE_SMTP_URL`` for ``smtp_url``,
    ``ECLIPSE_WORKSPACE_QUOTA_OVERRIDES`` for the per-workspace quotas,
    ``ECLIPSE_REPORT_RETENTION_DAYS`` for scheduled reports).
    """

    max_export_rows: int | None = None
    workspace_quota_bytes: int | None = None
    retention_hours: int | None = None
    download_url_ttl_seconds: int | None = None
    smtp_url: str | None = None
    report_retention_days: int | None = None

    def get_limits(self) -> ExportLimits:
        """The limits as a plain dataclass for the exporter."""
        s = _settings()
        return ExportLimits(
            max_export_rows=self.max_export_rows or s.max_export_rows,
            workspace_quota_bytes=self.workspace_quota_bytes or s.workspace_quota_bytes,
            retention_hours=self.retention_hours or s.retention_hours,
            download_url_ttl_seconds=self.download_url_ttl_seconds or s.download_url_ttl_seconds,
            smtp_url=self.smtp_url or s.smtp_url,
            workspace_quota_overrides=s.workspace_quota_overrides,
        )

    def get_report_retention_days(self) -> int:
        """How many days a scheduled executive report lives (``ECLIPSE_REPORT_RETENTION_DAYS``, default 90)."""
        return self.report_retention_days or _settings().report_retention_days


    def get_retention_policy(self) -> RetentionPolicy:
        """How long export files, scheduled reports, incomplete uploads and dead letters live."""
        s = _settings()
        return RetentionPolicy.from_settings(s.model_copy(update={
            "retention_hours": self.retention_hours or s.retention_hours,
            "report_retention_days": self.get_report_retention_days()}))

class AuditSigningResource(ConfigurableResource):
    """The Ed25519 key that signs the daily audit archives, and how long they live.

    The key is ``ECLIPSE_AUDIT_SIGNING_KEY`` (PEM), never resource config; unset, a key generated once in the
    local data folder (``ECLIPSE_DATA_DIR``). ``retention_days`` defaults to ``ECLIPSE_AUDIT_RETENTION_DAYS``.
    """

    retention_days: int | None = None

    def get_key(self) -> "Ed25519PrivateKey":
        """The private key; raises ``SigningKeyError`` for a key that is not an Ed25519 PEM."""
        from eclipse_exports.audit.signing import load_private_key

        settings = _settings()
        return load_private_key(settings.audit_signing_key, settings.data_dir)

    def get_retention_days(self) -> int:
        """Days an audit archive lives (default 400)."""
        return self.retention_days or _settings().audit_retention_days


class SmtpResource(ConfigurableResource):
    """The SMTP server of the weekly report emails. ``url`` defaults to ``ECLIPSE_SMTP_URL``; unset = no email.

    ``max_attachment_bytes`` caps the base64-encoded report attachment (default 10 MB); a larger report is
    sent as a download link.
    """

    url: str | None = None
    max_attachment_bytes: int = MAX_ATTACHMENT_ENCODED_BYTES

    def get_target(self) -> SmtpTarget | None:
        """The parsed server, or ``None`` when email is not configured. Raises ``ValueError`` for a bad URL."""
        url = self.url or _settings().smtp_url
        return parse_smtp_url(url) if url else None


def default_resources() -> dict[str, ConfigurableResource]:
    """The resource set of a deployment, every value read from the environment at run time."""
    return {
        "source_db": SourceDatabaseResource(),
        "redis": RedisResource(),
        "storage": ExportStorageResource(),
        "limits": ExportLimitsResource(),
        "smtp": SmtpResource(),
        "audit_signing": AuditSigningResource(),
    }
