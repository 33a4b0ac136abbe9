"""What every command shares: the error type and exit codes, one-line service errors, the settings, and the
Redis and S3 handles.

Only the standard library and click are imported here; each command imports the rest of the project when
it runs, so ``--help`` and the Redis-only commands answer without loading Dagster, pyarrow or boto3.
"""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar
from urllib.parse import urlparse

import click

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Connection

    from eclipse_exports.config import Settings
    from eclipse_exports.queue.status import JobStatusStore
    from eclipse_exports.storage.client import ExportStorage

ERROR_EXIT = 2
# --timeout of the commands that wait: seconds, more than 0.
SECONDS = click.FloatRange(min=0, min_open=True)
JOB_FAILED_EXIT = 1
S3_CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                        "ExpiredToken"}
# Settings the running `dev` wrote to its env file and this process took from there (for error messages).
FROM_ENV_FILE: dict[str, str] = {}


class CliError(click.ClickException):
    """A command that cannot do what was asked: message on stderr, exit status 2."""

    exit_code = ERROR_EXIT


def fail(message: str) -> NoReturn:
    """Stop the command with ``message`` (credentials masked) on stderr and exit status 2."""
    from eclipse_exports.config import redact

    raise CliError(redact(message))


T = TypeVar("T")


def read_source(current: "Settings", read: "Callable[[Connection], T]") -> T:
    """``read(conn)`` on a connection to the source database (``ECLIPSE_DATABASE_URL``), its result returned.

    Any failure of the database, or of ``read``, stops the command: "cannot read workspaces from …", credentials
    masked, exit status 2.
    """
    from eclipse_exports.source.engine import source_engine

    try:
        with source_engine(current.database_url).connect() as conn:
            return read(conn)
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, redacted, as a CLI error
        fail(f"cannot read workspaces from {current.database_url}: {first_line(getattr(exc, 'orig', None) or exc)}")


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (a driver's error goes on with hints and a link), else its
    class name."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def settings() -> "Settings":
    """The deployment's settings from the environment (the env file already applied)."""
    from eclipse_exports.config import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(f"bad setting: {exc}")


def store(current: "Settings") -> "JobStatusStore":
    """The job status store on the deployment's Redis (5 s to connect, 10 s per reply)."""
    import redis

    from eclipse_exports.queue.status import JobStatusStore

    client = redis.Redis.from_url(current.redis_url, socket_timeout=10, socket_connect_timeout=5)
    return JobStatusStore(client, current.retention_hours)


def storage(current: "Settings") -> "ExportStorage":
    """The export bucket (boto3 is imported only by the commands that reach S3)."""
    from eclipse_exports.storage.client import storage_from_settings

    try:
        return storage_from_settings(current)
    except ValueError as exc:  # plain HTTP refused, a bad ECLIPSE_S3_SSE
        fail(str(exc))


def unknown_job(job_id: str, jobs: "JobStatusStore | None" = None) -> NoReturn:
    """Stop: ``job_id`` has no status hash (in the Redis of ``jobs``, named in the message when given)."""
    where = ""
    if jobs is not None:
        conn = jobs.client.connection_pool.connection_kwargs
        where = (f" in the Redis at {conn.get('host', conn.get('path', '?'))}:{conn.get('port', '')}"
                 f"/{conn.get('db', 0)} (ECLIPSE_REDIS_URL; outside the project folder `source .local/env.sh` "
                 "first)")
    fail(f"unknown job {job_id!r}: no status hash{where}. A request XADDed by hand gets one when the sensor picks "
         "it up, within seconds; `eclipse-exports status JOB --watch` waits for it")


def job(jobs: "JobStatusStore", job_id: str) -> dict[str, str]:
    """The job's status hash, or stop when it has none."""
    return jobs.get(job_id) or unknown_job(job_id, jobs)


def hash_field(fields: dict[str, str], job_id: str, name: str) -> str:
    """A field of a job's status hash that must be there; stop with one line when it is missing (an incomplete
    or hand-written hash). ``workspaceId`` must also be a valid id."""
    from eclipse_exports.models import ID_RE

    value = fields.get(name)
    if not value:
        fail(f"job '{job_id}' has an incomplete status hash: no {name} (was it written by hand?)")
    if name == "workspaceId" and not ID_RE.fullmatch(value):
        fail(f"job '{job_id}' has a forged status hash: workspaceId {value!r} is not a workspace id")
    return value


def hash_time(fields: dict[str, str], job_id: str, name: str) -> "datetime":
    """A timestamp field of a job's status hash as an aware datetime; stop with one line when it is missing or
    not ISO-8601 with an offset."""
    from datetime import datetime

    value = hash_field(fields, job_id, name)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        fail(f"job '{job_id}' has a malformed status hash: {name} {value!r} is not an ISO-8601 UTC time")
    return moment


def checked_key(storage: "ExportStorage", key: str, workspace_id: str, job_id: str | None, command: str) -> None:
    """Stop with one line when ``key`` may not be handed out for ``workspace_id`` (``check_key``: outside the
    workspace's prefix, ``../``, not a file of this project); the refusal is recorded in that workspace's
    audit trail (``key_refused``) first, as far as Redis lets it."""
    from eclipse_exports.storage.keys import KeyRefused

    try:
        storage.check_key(key, workspace_id)
    except KeyRefused as exc:
        _audit(workspace_id, "key_refused", job_id, {"key": key[:1024], "by": command, "reason": str(exc)})
        fail(f"job '{job_id}': {exc}" if job_id else str(exc))


def audit_link(current: "Settings", workspace_id: str, job_id: str | None, command: str, key: str) -> None:
    """Record in the workspace's audit trail that ``command`` issued a download link for ``key``."""
    _audit(workspace_id, "link_issued", job_id, {"by": command, "filePath": key}, current)


def _audit(workspace_id: str, event: str, job_id: str | None, details: dict, current: "Settings | None" = None) \
        -> None:
    import redis

    from eclipse_exports.audit.trail import AuditTrail, system_actor

    current = current or settings()
    client = redis.Redis.from_url(current.redis_url, socket_timeout=10, socket_connect_timeout=5)
    with service_errors(current):
        AuditTrail(client).append(workspace_id, event, job_id=job_id, actor=system_actor("cli"), details=details)


def _origin(variable: str, default_hint: str) -> str:
    if variable in FROM_ENV_FILE:
        from eclipse_exports.config import data_dir_from_env
        from eclipse_exports.local.env_file import env_file

        return (f" (taken from {env_file(data_dir_from_env())}, written by `eclipse-exports dev`: "
                "is it still running?)")
    if os.environ.get(variable):
        return f" (from {variable})"
    return default_hint


@contextmanager
def service_errors(current: "Settings") -> Iterator[None]:
    """Turn Redis and S3 errors into one clear line naming the service and the cause.

    A Redis or botocore exception can only be raised once its library is loaded, so the library is looked
    up in ``sys.modules`` rather than imported: a command that never touched S3 does not pay for boto3 here.
    """
    try:
        yield
    except Exception as exc:
        _explain(current, exc)
        raise


def _explain(current: "Settings", exc: Exception) -> None:
    """Stop with one line for a known Redis or S3 failure; return for anything else (re-raised by the caller)."""
    redis = sys.modules.get("redis")
    if redis is not None:
        not_running = (" (the default: is the product running? In its folder the CLI reads .local/env.sh; "
                       "elsewhere `source` that file or set ECLIPSE_REDIS_URL)")
        needs_password = (f"Redis at {current.redis_url} needs a password: put it in ECLIPSE_REDIS_URL "
                          "(redis://:PASSWORD@host:port/0)")
        if isinstance(exc, redis.AuthenticationError):
            if not urlparse(current.redis_url).password:
                fail(needs_password)
            fail(f"Redis at {current.redis_url} refused the credentials: {exc}")
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            fail(f"cannot reach Redis at {current.redis_url}{_origin('ECLIPSE_REDIS_URL', not_running)}: {exc}")
        if isinstance(exc, redis.ResponseError) and "NOAUTH" in str(exc):
            fail(needs_password)
    boto = sys.modules.get("botocore.exceptions")
    if boto is not None:
        endpoint = current.s3_endpoint_url or "AWS"
        if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            fail("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for the run command's local "
                 "S3, `source .local/env.sh` or run the command in the project folder)")
        if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionError):
            fail(f"cannot reach S3 at {endpoint}{_origin('AWS_ENDPOINT_URL', '')}: {exc}")
        if isinstance(exc, boto.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in S3_CREDENTIAL_ERRORS:
                fail(f"S3 at {endpoint} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY")
            fail(f"S3 error at {endpoint}: {exc}")
