"""The ``eclipse-exports`` command line (CONTRACT section 7, plus ``dev``).

Commands: ``demo-data``, ``request``, ``status``, ``url``, ``jobs``, ``retry``,
``report-backfill`` (executive reports for workspaces × weeks, through the
running webserver), ``cleanup`` (the retention pass, without Dagster),
``usage`` (a workspace's bytes against its quota) and ``dev`` (start the local
services and Dagster). Every command but ``dev`` and ``demo-data`` first reads
the env file the running ``dev`` wrote (``$ECLIPSE_DATA_DIR/env.sh``, default
``./.local/env.sh``) for the settings the shell does not set itself, so a
second shell in the project folder needs no setup. Errors go to stderr with
exit status 2 (1 is kept for "the job failed, was rejected or expired" from
``status`` and "something could not be cleaned" from ``cleanup``), and name the
service and the cause: Redis or S3 unreachable, or their credentials missing
or refused.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import click
import redis
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from sqlalchemy import inspect

from eclipse_exports.config import Settings, redact
from eclipse_exports.exports import summary as export_summary
from eclipse_exports.local.deployment import (
    DEFAULT_REDIS_PORT,
    DEFAULT_S3_PORT,
    DEFAULT_UI_PORT,
    DeploymentRefused,
    apply_env_file,
    choose_port,
    env_file,
    lock_data_folder,
    write_env_file,
)
from eclipse_exports.local.services import PortTaken, Service, listens, port_open, start_redis, start_seaweedfs
from eclipse_exports.models import ID_RE, ExportRequest, InvalidRequest, JobStatus
from eclipse_exports.partitions import FIRST_REPORT_WEEK
from eclipse_exports.queue.dead_letters import recent_dead_letters
from eclipse_exports.queue.producer import enqueue_request
from eclipse_exports.queue.status import TERMINAL_STATUSES, JobStatusStore
from eclipse_exports.reports.weekly import ReportWeek
from eclipse_exports.retention.cleanup import run_cleanup
from eclipse_exports.retention.policy import RetentionPolicy
from eclipse_exports.retention.usage import QuotaPolicy, WorkspaceUsage
from eclipse_exports.source.access import active_workspace_ids, workspace_status
from eclipse_exports.source.demo_data import SCALES, load_demo_data
from eclipse_exports.source.engine import source_engine
from eclipse_exports.storage.client import ExportStorage, make_s3_client

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_ACCESS_KEY, DEV_SECRET_KEY = "eclipse-dev", "eclipse-dev-secret"
ERROR_EXIT = 2
JOB_FAILED_EXIT = 1
S3_CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                        "ExpiredToken"}
RETRYABLE = (JobStatus.FAILED, JobStatus.EXPIRED)
# Settings the running `dev` wrote to its env file and this process took from there (for error messages).
_FROM_ENV_FILE: dict[str, str] = {}


class CliError(click.ClickException):
    """A command that cannot do what was asked: message on stderr, exit status 2."""

    exit_code = ERROR_EXIT


def _fail(message: str) -> NoReturn:
    raise CliError(redact(message))


def _ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _origin(variable: str, default_hint: str) -> str:
    if variable in _FROM_ENV_FILE:
        return (f" (taken from {env_file(Settings.from_env().data_dir)}, written by `eclipse-exports dev`: "
                "is it still running?)")
    if os.environ.get(variable):
        return f" (from {variable})"
    return default_hint


@contextmanager
def _service_errors(settings: Settings) -> Iterator[None]:
    """Turn Redis and S3 errors into one clear line naming the service and the cause."""
    not_running = (" (the default: is the product running? In its folder the CLI reads .local/env.sh; elsewhere "
                   "`source` that file or set ECLIPSE_REDIS_URL)")
    try:
        yield
    except redis.AuthenticationError as exc:
        if not urlparse(settings.redis_url).password:
            _fail(f"Redis at {settings.redis_url} needs a password: put it in ECLIPSE_REDIS_URL "
                  "(redis://:PASSWORD@host:port/0)")
        _fail(f"Redis at {settings.redis_url} refused the credentials: {exc}")
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        _fail(f"cannot reach Redis at {settings.redis_url}{_origin('ECLIPSE_REDIS_URL', not_running)}: {exc}")
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc):
            _fail(f"Redis at {settings.redis_url} needs a password: put it in ECLIPSE_REDIS_URL "
                  "(redis://:PASSWORD@host:port/0)")
        raise
    except (NoCredentialsError, PartialCredentialsError):
        _fail("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for the run command's local S3, "
              "`source .local/env.sh` or run the command in the project folder)")
    except (EndpointConnectionError, BotoConnectionError) as exc:
        endpoint = settings.s3_endpoint_url or "AWS"
        _fail(f"cannot reach S3 at {endpoint}{_origin('AWS_ENDPOINT_URL', '')}: {exc}")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in S3_CREDENTIAL_ERRORS:
            _fail(f"S3 at {settings.s3_endpoint_url or 'AWS'} refused the credentials ({code}): check "
                  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        _fail(f"S3 error at {settings.s3_endpoint_url or 'AWS'}: {exc}")


def _settings() -> Settings:
    return Settings.from_env()


def _store(settings: Settings) -> JobStatusStore:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    return JobStatusStore(client, settings.retention_hours)


def _storage(settings: Settings) -> ExportStorage:
    return ExportStorage(make_s3_client(settings.s3_endpoint_url), settings.s3_bucket, settings.s3_prefix)


def _unknown_job(job_id: str) -> NoReturn:
    _fail(f"unknown job '{job_id}': no status hash (a request XADDed by hand gets one when the sensor picks it "
          "up, within seconds; `eclipse-exports status JOB --watch` waits for it)")


def _job(store: JobStatusStore, job_id: str) -> dict[str, str]:
    return store.get(job_id) or _unknown_job(job_id)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Eclipse Exports: export Eclipse alerts, infringements and actions to S3 via Dagster.

    \b
    Example (with `eclipse-exports dev` running in another shell of the project folder):
      JOB=$(eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts --format csv)
      eclipse-exports status "$JOB" --watch
    """
    if ctx.invoked_subcommand not in ("dev", "demo-data", None):
        _FROM_ENV_FILE.update(apply_env_file(os.environ, Settings.from_env().data_dir))


@main.command("demo-data")
@click.option("--database-url", help="SQLAlchemy URL (default: ECLIPSE_DATABASE_URL or the local SQLite file).")
@click.option("--scale", type=click.Choice(sorted(SCALES)), default="small", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed (and --as-of), same rows.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="End of the 90-day history (default today).")
@click.option("--workspaces", "generated", type=click.IntRange(0, 9_999), default=0, show_default=True,
              help="Extra active workspaces (ws_gen_0001…), each with an owner, admin, analyst and data.")
def demo_data(database_url: str | None, scale: str, seed: int, as_of: datetime | None, generated: int) -> None:
    """Create the source tables and fill them with demo workspaces, users and generated data.

    \b
    Examples:
      eclipse-exports demo-data --scale large        # 1,000,000 alerts into .local/eclipse.db
      eclipse-exports demo-data --workspaces 200     # plus 200 generated workspaces
    """
    settings = _settings()
    url = database_url or settings.database_url
    _ensure_sqlite_folder(url)
    started = time.monotonic()
    try:
        counts = load_demo_data(source_engine(url), scale, seed, as_of.replace(tzinfo=UTC) if as_of else None,
                                generated_workspaces=generated)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, redacted, as a CLI error
        _fail(f"demo data failed: {exc}")
    summary = ", ".join(f"{n:,} {t}" for t, n in counts.items())
    click.echo(f"demo data ({scale}, seed {seed}) in {redact(url)}: {summary} [{time.monotonic() - started:.1f}s]")


def _payload_from_file(path: str) -> dict:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read a JSON request from {path}: {exc}")
    if not isinstance(payload, dict):
        _fail(f"{path} holds no JSON object")
    return payload


@main.command("request")
@click.option("--file", "payload_file", type=click.Path(dir_okay=False),
              help="Send this JSON request (e.g. from examples/requests/) under a new id; other options ignored.")
@click.option("--workspace")
@click.option("--user")
@click.option("--resource", type=click.Choice(["alerts", "infringements", "actions", "report"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "parquet", "html"]))
@click.option("--severity", multiple=True, help="Repeat for several values.")
@click.option("--status", "statuses", multiple=True, help="Repeat for several values.")
@click.option("--brand", multiple=True, help="Brand name; repeat for several.")
@click.option("--from", "date_from", help="Inclusive, ISO-8601 with offset, e.g. 2026-11-01T00:00:00Z.")
@click.option("--to", "date_to", help="Exclusive, ISO-8601 with offset.")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True)
@click.option("--excel-compatible", is_flag=True, help="CSV only: UTF-8 BOM and CRLF line ends.")
@click.option("--delivery", type=click.Choice(["download", "email"]), default="download", show_default=True)
@click.option("--id", "job_id", help="Request id (default: a new UUID).")
def request_cmd(payload_file: str | None, workspace: str | None, user: str | None, resource: str | None,
                fmt: str | None, severity: tuple, statuses: tuple, brand: tuple, date_from: str | None,
                date_to: str | None, compression: str, excel_compatible: bool, delivery: str,
                job_id: str | None) -> None:
    """Put an export request on the Redis stream and print its job id.

    \b
    Examples:
      eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts --format csv
      eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource infringements \\
          --format jsonl --severity critical --compression gzip
      eclipse-exports request --file examples/requests/alerts-parquet-filtered.json
    """
    if payload_file:
        payload = _payload_from_file(payload_file)
        payload["id"] = job_id or str(uuid.uuid4())
    else:
        missing = [name for name, value in (("--workspace", workspace), ("--user", user), ("--resource", resource),
                                            ("--format", fmt)) if not value]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)} (or give --file)")
        filters = {k: v for k, v in {"severity": list(severity) or None, "status": list(statuses) or None,
                                     "brand": list(brand) or None, "from": date_from, "to": date_to}.items() if v}
        options: dict = {"compression": compression}
        if excel_compatible:
            options["excelCompatible"] = True
        payload = {"id": job_id or str(uuid.uuid4()), "workspaceId": workspace, "userId": user,
                   "resourceType": resource, "format": fmt, "filters": filters, "options": options,
                   "delivery": delivery}
    payload.setdefault("createdAt", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    try:
        request = ExportRequest.from_payload(json.dumps(payload))
    except InvalidRequest as exc:
        _fail(f"invalid request: {exc}")
    click.echo(_enqueue(request))


def _enqueue(request: ExportRequest, extra: dict[str, str] | None = None) -> str:
    settings = _settings()
    with _service_errors(settings):
        store = _store(settings)
        if store.exists(request.id):
            _fail(f"job id '{request.id}' is already in use; request ids must be unique")
        enqueue_request(store.client, request, settings.retention_hours, extra)
    return request.id


def _progress_line(fields: dict[str, str]) -> str:
    pct = int(fields.get("progress") or 0)
    bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
    rows = fields.get("rowsWritten") or "0"
    total = fields.get("rowCount") or "?"
    total_text = total if total == "?" else f"{int(total):,}"
    return f"[{bar}] {pct:3d}%  {int(rows):,}/{total_text} rows  {fields.get('status')}"


def _age(moment: str | None, now: datetime | None = None) -> str:
    if not moment:
        return "-"
    try:
        then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def describe_job(fields: dict[str, str], dagster_url: str | None = None) -> list[str]:
    """A job's status hash as readable lines (what ``status`` prints by default)."""
    job_id, state = fields.get("id", "?"), fields.get("status", "unknown")
    lines = [f"job        {job_id}",
             f"request    {fields.get('resourceType', '?')} as {fields.get('format', '?')} from "
             f"{fields.get('workspaceId', '?')}, by {fields.get('userId', '?')}"]
    if fields.get("request"):
        try:
            lines.append(f"scope      {export_summary.describe_scope(ExportRequest.from_payload(fields['request']))}")
        except InvalidRequest:
            pass
    detail = ""
    if state in (JobStatus.RUNNING, JobStatus.COMPLETED) and fields.get("rowCount"):
        detail = f"  {export_summary.progress_text(int(fields.get('rowsWritten') or 0), int(fields['rowCount']))}"
    if state == JobStatus.COMPLETED and fields.get("byteSize"):
        detail = f"  {int(fields['rowCount']):,} rows, {export_summary.human_size(int(fields['byteSize']))}"
    lines.append(f"status     {state}{detail}")
    if fields.get("errorCode") or fields.get("error"):
        lines.append(f"error      {fields.get('errorCode', '?')}: {fields.get('error', '')}")
    for name, label in (("createdAt", "created"), ("startedAt", "started"), ("completedAt", "finished")):
        if fields.get(name):
            lines.append(f"{label:<10} {fields[name]} ({_age(fields[name])})")
    if fields.get("filePath"):
        lines.append(f"file       {fields['filePath']}")
    if state == JobStatus.COMPLETED:
        lines.append(f"expires    {fields.get('expiresAt', '?')}")
        lines.append(f"download   eclipse-exports url {job_id}   (a fresh link)")
    if fields.get("retryOf"):
        lines.append(f"retry of   {fields['retryOf']}")
    if fields.get("runId"):
        link = f"   {dagster_url.rstrip('/')}/runs/{fields['runId']}" if dagster_url else ""
        lines.append(f"dagster    run {fields['runId']}{link}")
    if state in RETRYABLE:
        lines.append(f"next       eclipse-exports retry {job_id}")
    return lines


@main.command("status")
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Wait for the job (even before it is picked up) and show live progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status hash as JSON.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to watch before giving up.")
def status_cmd(job_id: str, watch: bool, as_json: bool, timeout: float) -> None:
    """Show a job's status; exit 1 if it failed, was rejected or expired.

    \b
    Examples:
      eclipse-exports status 3f2a9c1e-…            # readable summary
      eclipse-exports status 3f2a9c1e-… --watch    # progress bar on stderr until the job ends
      eclipse-exports status 3f2a9c1e-… --json     # the raw hash eclipse:exports:job:{id}
    """
    settings = _settings()
    with _service_errors(settings):
        store = _store(settings)
        fields = store.get(job_id)
        deadline = time.monotonic() + timeout
        while watch and fields.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
            click.echo("\r" + _progress_line(fields) if fields else f"\rwaiting for {job_id} to be picked up…",
                       nl=False, err=True)
            time.sleep(0.5)
            fields = store.get(job_id)
        if watch and fields:
            click.echo("\r" + _progress_line(fields), err=True)
    if not fields:
        _unknown_job(job_id)
    if as_json:
        click.echo(json.dumps(fields, indent=2, sort_keys=True))
    else:
        click.echo("\n".join(describe_job(fields, os.environ.get("ECLIPSE_DAGSTER_URL"))))
    if fields.get("status") in (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED):
        sys.exit(JOB_FAILED_EXIT)


@main.command("url")
@click.argument("job_id")
def url_cmd(job_id: str) -> None:
    """Print a fresh presigned download URL for a completed job's live file.

    \b
    Example:
      curl -o export.csv "$(eclipse-exports url 3f2a9c1e-…)"
    """
    settings = _settings()
    with _service_errors(settings):
        fields = _job(_store(settings), job_id)
    if fields.get("status") == JobStatus.EXPIRED:
        _fail(f"the file of job '{job_id}' has expired (retention {settings.retention_hours} h); "
              f"`eclipse-exports retry {job_id}` exports it again")
    if fields.get("status") != JobStatus.COMPLETED or not fields.get("filePath"):
        _fail(f"job '{job_id}' has no file (status: {fields.get('status', 'unknown')})")
    expires = datetime.fromisoformat(fields["expiresAt"].replace("Z", "+00:00"))
    left = int((expires - datetime.now(UTC)).total_seconds())
    if left <= 0:
        _fail(f"the file of job '{job_id}' has expired (at {fields['expiresAt']})")
    with _service_errors(settings):
        storage = _storage(settings)
        if not storage.exists(fields["filePath"]):
            _fail(f"the file of job '{job_id}' is gone from S3 (expired or removed)")
        url = storage.presign(fields["filePath"], min(settings.download_url_ttl_seconds, left))
    click.echo(url)


@main.command("jobs")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in JobStatus]),
              help="Only jobs in this status; repeat for several.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the status hashes as JSON lines.")
def jobs_cmd(workspace: str, statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List a workspace's recent jobs, newest first.

    \b
    Examples:
      eclipse-exports jobs --workspace ws_acme
      eclipse-exports jobs --workspace ws_acme --status failed --status expired --limit 5
    """
    settings = _settings()
    with _service_errors(settings):
        jobs = _store(settings).recent_jobs(workspace, statuses, limit)
    if as_json:
        for fields in jobs:
            click.echo(json.dumps(fields, sort_keys=True))
        return
    if not jobs:
        click.echo(f"no jobs for workspace '{workspace}'" + (f" with status {', '.join(statuses)}" if statuses else ""),
                   err=True)
        return
    rows = [("JOB", "RESOURCE", "FORMAT", "STATUS", "ROWS", "CREATED")]
    for fields in jobs:
        state = fields.get("status", "?") + (f" ({fields['errorCode']})" if fields.get("errorCode") else "")
        count = fields.get("rowCount")
        rows.append((fields.get("id", "?"), fields.get("resourceType", "?"), fields.get("format", "?"), state,
                     f"{int(count):,}" if count else "-", _age(fields.get("createdAt"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@main.command("retry")
@click.argument("job_id")
def retry_cmd(job_id: str) -> None:
    """Send a failed or expired job's request again under a new id (its status records retryOf); print the id.

    \b
    Example:
      NEW=$(eclipse-exports retry 3f2a9c1e-…) && eclipse-exports status "$NEW" --watch
    """
    settings = _settings()
    with _service_errors(settings):
        fields = _job(_store(settings), job_id)
    state = fields.get("status")
    if state == JobStatus.COMPLETED:
        _fail(f"job '{job_id}' completed; nothing to retry (`eclipse-exports url {job_id}` gives a fresh link)")
    if state == JobStatus.REJECTED:
        _fail(f"job '{job_id}' was rejected ({fields.get('errorCode')}: {fields.get('error')}); the same request "
              "would be refused again, so send a corrected one")
    if state not in RETRYABLE:
        _fail(f"job '{job_id}' is {state}, not finished; only failed or expired jobs are retried")
    if not fields.get("request"):
        _fail(f"job '{job_id}' has no stored request to send again; send it anew with `eclipse-exports request`")
    payload = json.loads(fields["request"])
    if fields.get("userId") == "operator":
        _fail(f"job '{job_id}' was an operator materialization from the Dagster UI; materialize the partition again "
              "there")
    payload.update(id=str(uuid.uuid4()), createdAt=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    click.echo(_enqueue(ExportRequest.from_payload(json.dumps(payload)), {"retryOf": job_id}))


@main.command("dead-letters")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print each entry with all its original fields as JSON lines.")
def dead_letters_cmd(limit: int, as_json: bool) -> None:
    """List the newest refused stream entries (the dead-letter stream), newest first, with why.

    \b
    Examples:
      eclipse-exports dead-letters
      eclipse-exports dead-letters --limit 100 --json | jq .original.payload
    """
    settings = _settings()
    with _service_errors(settings):
        letters = recent_dead_letters(_store(settings).client, limit)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(asdict(letter), sort_keys=True))
        return
    if not letters:
        click.echo("no dead letters: every request on the stream was valid and new", err=True)
        return
    for letter in letters:
        click.echo(f"{letter.entry_id}  from entry {letter.source_entry_id}  job {letter.job_id or '-'}  "
                   f"{letter.error_code}: {letter.reason[:200]}")
        click.echo(f"    fields: {', '.join(sorted(letter.original)) or '(none)'}")


DAGSTER_LOCATION = {"repositoryLocationName": "eclipse_exports", "repositoryName": "__repository__"}
ADD_PARTITION = """mutation($r: RepositorySelector!, $d: String!, $k: String!) {
  addDynamicPartition(repositorySelector: $r, partitionsDefName: $d, partitionKey: $k) {
    __typename ... on Error { message } } }"""
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"""


def _graphql(dagster_url: str, query: str, variables: dict) -> dict:
    """POST one GraphQL operation to the Dagster webserver; returns ``data`` or fails with a readable error."""
    request = urllib.request.Request(f"{dagster_url.rstrip('/')}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError) as exc:
        _fail(f"cannot reach the Dagster webserver at {dagster_url}: {exc}")
    if payload.get("errors"):
        _fail(f"Dagster refused the request: {payload['errors'][0].get('message')}")
    return payload["data"]


def _report_weeks(count: int, keys: tuple[str, ...], now: datetime) -> list[ReportWeek]:
    latest = ReportWeek.last_complete(now)
    if not keys:
        weeks = [ReportWeek(latest.start - timedelta(days=7 * n)) for n in reversed(range(count))]
        return [week for week in weeks if week.key >= FIRST_REPORT_WEEK]
    weeks = []
    for key in keys:
        try:
            week = ReportWeek.from_key(key)
        except ValueError as exc:
            _fail(f"--week {key!r}: {exc} (give the Monday of the week as YYYY-MM-DD)")
        if not FIRST_REPORT_WEEK <= week.key <= latest.key:
            _fail(f"--week {key}: reports exist for the weeks from {FIRST_REPORT_WEEK} to {latest.key}")
        weeks.append(week)
    return sorted(set(weeks), key=lambda w: w.start)


@main.command("report-url")
@click.argument("workspace_id")
@click.argument("week", metavar="WEEK")
def report_url(workspace_id: str, week: str) -> None:
    """Print a presigned link to a workspace's weekly executive report (it opens in the browser).

    WEEK is any date of the week, YYYY-MM-DD; the report is the one of the week starting that Monday.

    \b
    Example:
      eclipse-exports report-url ws_acme 2026-11-23
    """
    settings = _settings()
    try:
        day = date.fromisoformat(week)
    except ValueError:
        _fail(f"WEEK must be a date, YYYY-MM-DD (got {week!r})")
    if not ID_RE.fullmatch(workspace_id):
        _fail(f"not a workspace id: {workspace_id!r}")
    monday = day - timedelta(days=day.weekday())
    with _service_errors(settings):
        storage = _storage(settings)
        key = storage.report_key(workspace_id, monday)
        if not storage.exists(key):
            _fail(f"no executive report of '{workspace_id}' for the week of {monday.isoformat()} (looked for "
                  f"{key}); `eclipse-exports report-backfill --workspace {workspace_id} --week "
                  f"{monday.isoformat()}` makes it")
        click.echo(storage.presign(key, settings.download_url_ttl_seconds))


@main.command("report-backfill")
@click.option("--weeks", "count", type=click.IntRange(1, 520), default=1, show_default=True,
              help="The last N complete weeks (Monday 00:00 to Monday 00:00 UTC).")
@click.option("--week", "week_keys", multiple=True, help="A week by its Monday, YYYY-MM-DD; repeat (replaces --weeks).")
@click.option("--workspace", "workspace_ids", multiple=True, help="Repeat for several (default: every active one).")
@click.option("--dagster-url", envvar="ECLIPSE_DAGSTER_URL", default="http://127.0.0.1:3000", show_default=True,
              help="The running Dagster webserver (default: ECLIPSE_DAGSTER_URL from the env file `dev` writes).")
@click.option("--dry-run", is_flag=True, help="Print the partitions; launch nothing.")
def report_backfill(count: int, week_keys: tuple[str, ...], workspace_ids: tuple[str, ...], dagster_url: str,
                    dry_run: bool) -> None:
    """Backfill executive_report for workspaces × weeks, as the UI's "Materialize" on the asset does.

    Dagster batches the partitions into runs (ECLIPSE_REPORTS_PER_RUN each). Prints the backfill id.

    \b
    Example:
      eclipse-exports report-backfill --weeks 4                  # every active workspace, last 4 weeks
    """
    settings = _settings()
    weeks = _report_weeks(count, week_keys, datetime.now(UTC))
    try:
        with source_engine(settings.database_url).connect() as conn:
            unknown = [w for w in workspace_ids if not ID_RE.fullmatch(w) or workspace_status(conn, w) is None]
            workspaces = list(dict.fromkeys(workspace_ids)) or active_workspace_ids(conn)
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, redacted, as a CLI error
        _fail(f"cannot read workspaces from {settings.database_url}: {exc}")
    if unknown:
        _fail(f"unknown workspace(s): {', '.join(unknown)}")
    if not workspaces:
        _fail("no active workspace to report on")
    keys = [f"{week.key}|{workspace_id}" for week in weeks for workspace_id in workspaces]
    click.echo(f"{len(keys)} partition(s): {len(workspaces)} workspace(s) × {len(weeks)} week(s) "
               f"({weeks[0].key} to {weeks[-1].key})", err=True)
    if dry_run:
        click.echo("\n".join(keys))
        return
    for workspace_id in workspaces:  # a workspace the partitions sensor has not added yet
        result = _graphql(dagster_url, ADD_PARTITION, {"r": DAGSTER_LOCATION, "d": "workspaces", "k": workspace_id})
        outcome = result["addDynamicPartition"]
        if outcome["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            _fail(f"could not add workspace partition {workspace_id}: {outcome.get('message')}")
    result = _graphql(dagster_url, LAUNCH_BACKFILL, {"p": {
        "partitionNames": keys, "assetSelection": [{"path": ["executive_report"]}],
        "title": f"executive_report: {len(workspaces)} workspace(s) × {len(weeks)} week(s)"}})
    outcome = result["launchPartitionBackfill"]
    if outcome["__typename"] != "LaunchBackfillSuccess":
        _fail(f"Dagster did not launch the backfill: {outcome.get('message', outcome['__typename'])}")
    click.echo(f"backfill {outcome['backfillId']}: {dagster_url.rstrip('/')}/runs/b/{outcome['backfillId']}",
               err=True)
    click.echo(outcome["backfillId"])
def _parse_as_of(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601 (e.g. 2026-12-01T09:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@main.command("cleanup")
@click.option("--as-of", "as_of", callback=_parse_as_of,
              help="Judge ages as of this ISO-8601 moment (default now; without offset: UTC).")
@click.option("--dry-run", is_flag=True, help="List and count what is due; delete nothing.")
def cleanup_cmd(as_of: datetime | None, dry_run: bool) -> None:
    """Run the retention clean-up now (what export_cleanup_schedule runs) and print its summary.

    Exits 1 when any deletion, abort or update failed (the next run retries it).

    \b
    Examples:
      eclipse-exports cleanup --dry-run
      eclipse-exports cleanup --as-of 2026-12-01T09:00:00Z
    """
    settings = _settings()
    with _service_errors(settings):
        summary = run_cleanup(_storage(settings), _store(settings).client, RetentionPolicy.from_settings(settings),
                              as_of, dry_run)
    click.echo(redact(summary.render()))
    if not summary.ok:
        sys.exit(1)


@main.command("usage")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
def usage_cmd(workspace: str) -> None:
    """Print a workspace's export bytes (incomplete uploads included) against its quota.

    \b
    Example:
      eclipse-exports usage --workspace ws_acme
    """
    settings = _settings()
    if not ID_RE.fullmatch(workspace):
        _fail(f"workspace id {workspace!r} does not match the CONTRACT id pattern {ID_RE.pattern}")
    quota = QuotaPolicy(settings.workspace_quota_bytes, settings.workspace_quota_overrides).quota_for(workspace)
    with _service_errors(settings):
        used = WorkspaceUsage(_store(settings).client, _storage(settings)).bytes_used(workspace)
    share = used * 100 / quota
    click.echo(f"{workspace}: {used:,} of {quota:,} bytes ({share:.1f} %)"
               + ("  OVER QUOTA: new exports are refused" if used >= quota else ""))


def _ensure_redis(settings: Settings, redis_port: int | None, services: list[Service], ports: dict[str, int]) -> str:
    """The Redis URL the deployment uses: the one the environment names, else a redis-server of our own."""
    explicit = os.environ.get("ECLIPSE_REDIS_URL")
    if explicit:
        if redis_port is not None:
            _fail("give either ECLIPSE_REDIS_URL (a Redis to use) or --redis-port (where to start one), not both")
        parsed = urlparse(explicit)
        host, port = parsed.hostname or "localhost", parsed.port or 6379
        if port_open(host, port):
            click.echo(f"redis: using the server at {host}:{port} (ECLIPSE_REDIS_URL)")
            return explicit
        if host not in ("localhost", "127.0.0.1"):
            _fail(f"no Redis at {redact(explicit)} and it is not local, so none can be started")
    else:
        port, note = choose_port("Redis", redis_port, DEFAULT_REDIS_PORT,
                                 hint=" with --redis-port, or use that server on purpose with "
                                      "ECLIPSE_REDIS_URL=redis://127.0.0.1:PORT/0")
        if note:
            click.echo(f"redis: {note}")
        explicit = f"redis://127.0.0.1:{port}/0"
    fixed = redis_port is not None or bool(os.environ.get("ECLIPSE_REDIS_URL"))  # a port the user named
    service = _start_on_free_port(
        "Redis", port, fixed, lambda p: start_redis(p, settings.data_dir / "redis", settings.data_dir / "redis.log"),
        lambda: choose_port("Redis", None, DEFAULT_REDIS_PORT)[0])
    services.append(service)
    if service.ports["redis"] != port:
        port = service.ports["redis"]
        explicit = f"redis://127.0.0.1:{port}/0"
    ports["redis"] = port
    click.echo(f"redis: started redis-server on 127.0.0.1:{port} (data in {settings.data_dir / 'redis'})")
    return explicit


def _watch_ui_port(dagster: subprocess.Popen, host: str, port: int, timeout: float = 300.0,
                   grace: float = 15.0) -> None:
    """Return once ``dagster dev``'s webserver listens on ``port`` (or ``dagster`` exits, or ``timeout`` s pass).

    Stops ``dev`` (:func:`_fail`) when another program holds the port for ``grace`` s while ours does not: a
    second copy started at the same moment took it, and `dagster dev` would run on with its webserver dead.
    """
    deadline, foreign_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline and dagster.poll() is None:
        if listens(dagster.pid, port):
            return
        if port_open(host, port):
            foreign_since = foreign_since or time.monotonic()
            if time.monotonic() - foreign_since > grace:
                _fail(f"dagster: port {port} was taken by another program as the Dagster UI started; "
                      f"start again (a free port is chosen) or pass --port")
        time.sleep(0.5)


def _start_on_free_port(service: str, port: int, explicit: bool, start: Callable[[int], Service],
                        choose: Callable[[], int], attempts: int = 3) -> Service:
    """``start(port)``; when another program takes the port as the server starts (a second copy starting at the
    same moment), a chosen port moves to the next free one (up to ``attempts`` tries) and an explicit one stops
    ``dev`` with that message. Never reports a server as started on a port another program answers."""
    for attempt in range(attempts):
        try:
            return start(port)
        except PortTaken as exc:
            if explicit or attempt == attempts - 1:
                _fail(f"{service}: {exc}; `dev` does not use a server it did not start. Choose another port.")
            taken, port = port, choose()
            click.echo(f"{service.split()[0].lower()}: port {taken} was taken as it started, so {service} uses {port}")
    raise AssertionError("unreachable")


def _ensure_s3(settings: Settings, s3_port: int | None, services: list[Service], ports: dict[str, int]) -> None:
    """Use the S3 endpoint the environment names, else start SeaweedFS; create the bucket either way."""
    if settings.s3_endpoint_url is None:
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = DEV_ACCESS_KEY, DEV_SECRET_KEY
        os.environ.setdefault("AWS_REGION", "us-east-1")
        port, note = choose_port("S3 (SeaweedFS)", s3_port, DEFAULT_S3_PORT,
                                 hint=" with --s3-port, or use that endpoint on purpose with "
                                      "AWS_ENDPOINT_URL=http://127.0.0.1:PORT and its credentials")
        if note:
            click.echo(f"s3: {note}")
        service = _start_on_free_port(
            "S3 (SeaweedFS)", port, s3_port is not None,
            lambda p: start_seaweedfs(settings.data_dir / "seaweedfs", settings.s3_bucket,
                                      os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                      s3_port=p, log_file=settings.data_dir / "seaweedfs.log"),
            lambda: choose_port("S3 (SeaweedFS)", None, DEFAULT_S3_PORT)[0])
        services.append(service)
        ports.update({f"seaweedfs {name}": p for name, p in service.ports.items()})
        os.environ["AWS_ENDPOINT_URL"] = service.url
        click.echo(f"s3: started SeaweedFS, S3 API on {service.url} (data in {settings.data_dir / 'seaweedfs'}; "
                   f"its other ports: {', '.join(f'{n} {p}' for n, p in service.ports.items() if n != 's3')})")
    elif s3_port is not None:
        _fail("give either AWS_ENDPOINT_URL (an S3 to use) or --s3-port (where to start one), not both")
    else:
        click.echo(f"s3: using the endpoint at {settings.s3_endpoint_url} (AWS_ENDPOINT_URL)")
    settings = Settings.from_env()
    storage = _storage(settings)
    deadline = time.monotonic() + 60
    while True:
        try:
            storage.ensure_bucket()
            break
        except Exception as exc:  # noqa: BLE001 - the endpoint may still be starting
            if time.monotonic() > deadline:
                _fail(f"S3 endpoint {settings.s3_endpoint_url} not ready: {exc}")
            time.sleep(0.5)
    click.echo(f"s3: bucket '{settings.s3_bucket}' at {settings.s3_endpoint_url or 'AWS'}")


def _ensure_demo_data(settings: Settings, scale: str) -> None:
    engine = source_engine(settings.database_url)
    _ensure_sqlite_folder(settings.database_url)
    if inspect(engine).has_table("alerts"):
        click.echo(f"source database: {redact(settings.database_url)} (already has data)")
        return
    counts = load_demo_data(engine, scale)
    click.echo(f"source database: {redact(settings.database_url)} seeded with {counts['alerts']:,} alerts")


@main.command("dev")
@click.option("--port", type=int, help=f"Dagster UI port [default: {DEFAULT_UI_PORT}, or the next free one].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Dagster UI bind address.")
@click.option("--redis-port", type=int,
              help=f"Port of the redis-server dev starts [default: {DEFAULT_REDIS_PORT}, or the next free one]. "
                   "With ECLIPSE_REDIS_URL set, dev uses that Redis instead.")
@click.option("--s3-port", type=int,
              help=f"Port of the SeaweedFS S3 API dev starts [default: {DEFAULT_S3_PORT}, or the next free one]. "
                   "With AWS_ENDPOINT_URL set, dev uses that endpoint instead.")
@click.option("--scale", type=click.Choice(sorted(SCALES)), default="small", show_default=True,
              help="Demo data scale when the source database is empty.")
def dev(port: int | None, host: str, redis_port: int | None, s3_port: int | None, scale: str) -> None:
    """Start Redis, SeaweedFS (S3) and demo data as needed, then `dagster dev` with the daemon.

    Only one copy runs per data folder (ECLIPSE_DATA_DIR, default ./.local). A port given explicitly must be
    free; a default one that is taken moves to the next free port, and says so. Redis and S3 servers that
    dev did not start are used only when ECLIPSE_REDIS_URL or AWS_ENDPOINT_URL name them. Every setting a
    second shell needs is written to $ECLIPSE_DATA_DIR/env.sh.

    \b
    Examples:
      eclipse-exports dev                                  # UI on http://127.0.0.1:3000 (or the next free port)
      eclipse-exports dev --port 3111 --redis-port 6411 --s3-port 8411
      ECLIPSE_DATA_DIR=/tmp/mine eclipse-exports dev --host 0.0.0.0
      source .local/env.sh && eclipse-exports jobs --workspace ws_acme    # in a second shell
    """
    settings = _settings()
    try:
        lock = lock_data_folder(settings.data_dir)
        ui_port, ui_note = choose_port("the Dagster UI", port, DEFAULT_UI_PORT, host=host, hint=" with --port")
    except DeploymentRefused as exc:
        _fail(str(exc))
    os.environ["ECLIPSE_DATA_DIR"] = str(settings.data_dir)
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    services: list[Service] = []
    ports: dict[str, int] = {"dagster UI": ui_port}
    dagster: subprocess.Popen | None = None
    try:
        try:
            os.environ["ECLIPSE_REDIS_URL"] = _ensure_redis(settings, redis_port, services, ports)
            _ensure_s3(settings, s3_port, services, ports)
        except DeploymentRefused as exc:
            _fail(str(exc))
        settings = _settings()
        _ensure_demo_data(settings, scale)
        ui_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{ui_port}"
        os.environ["ECLIPSE_DAGSTER_URL"] = ui_url
        written = write_env_file(settings.data_dir, os.environ, ports)
        if ui_note:
            click.echo(f"dagster: {ui_note}")
        click.echo(f"dagster: UI on {ui_url} (DAGSTER_HOME={dagster_home})")
        click.echo(f"\nIn another shell: `source {written}` (the CLI in this folder reads it by itself), then\n"
                   f"  eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts "
                   f"--format csv\n")
        command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                   "-h", host, "-p", str(ui_port)]
        # A background shell starts us with SIGINT ignored, which children inherit; dagster dev shuts
        # down cleanly only on SIGINT, so give it the default handler back.
        dagster = subprocess.Popen(command, cwd=PROJECT_ROOT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        signal.signal(signal.SIGTERM, lambda *_: dagster.send_signal(signal.SIGINT))
        _watch_ui_port(dagster, "127.0.0.1" if host in ("0.0.0.0", "::") else host, ui_port)
        dagster.wait()
    except KeyboardInterrupt:
        if dagster is not None:
            dagster.wait()
    finally:
        if dagster is not None and dagster.poll() is None:
            dagster.send_signal(signal.SIGINT)
            try:
                dagster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dagster.kill()
        for service in reversed(services):
            service.stop()
        lock.close()
