"""What every command shares: the error type and exit codes, one-line service errors, the settings, and the
Redis and S3 handles.

Only the standard library and click are imported here; each command imports the rest of the project when
it runs, so ``--help`` and the Redis-only commands answer without loading Dagster, pyarrow or boto3.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlparse

import click

if TYPE_CHECKING:
    from eclipse_exports.config import Settings
    from eclipse_exports.queue.status import JobStatusStore
    from eclipse_exports.storage.client import ExportStorage

ERROR_EXIT = 2
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


def settings() -> "Settings":
    """The deployment's settings from the environment (the env file already applied)."""
    from eclipse_exports.config import Settings

    return Settings.from_env()


def store(current: "Settings") -> "JobStatusStore":
    """The job status store on the deployment's Redis (5 s to connect, 10 s per reply)."""
    import redis

    from eclipse_exports.queue.status import JobStatusStore

    client = redis.Redis.from_url(current.redis_url, socket_timeout=10, socket_connect_timeout=5)
    return JobStatusStore(client, current.retention_hours)


def storage(current: "Settings") -> "ExportStorage":
    """The export bucket (boto3 is imported only by the commands that reach S3)."""
    from eclipse_exports.storage.client import ExportStorage, make_s3_client

    return ExportStorage(make_s3_client(current.s3_endpoint_url), current.s3_bucket, current.s3_prefix)


def unknown_job(job_id: str) -> NoReturn:
    """Stop: ``job_id`` has no status hash."""
    fail(f"unknown job '{job_id}': no status hash (a request XADDed by hand gets one when the sensor picks it "
         "up, within seconds; `eclipse-exports status JOB --watch` waits for it)")


def job(jobs: "JobStatusStore", job_id: str) -> dict[str, str]:
    """The job's status hash, or stop when it has none."""
    return jobs.get(job_id) or unknown_job(job_id)


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
