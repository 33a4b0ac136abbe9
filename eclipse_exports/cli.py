"""The ``eclipse-exports`` command line (CONTRACT section 7, plus ``dev``).

Commands: ``demo-data``, ``request``, ``status``, ``url``, ``report-backfill``
(executive reports for workspaces × weeks, through the running webserver),
``cleanup`` (the retention pass, without Dagster), ``usage`` (a workspace's
bytes against its quota) and ``dev`` (start the local services and Dagster).
Errors go to stderr with a non-zero exit.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import click
import redis
from sqlalchemy import inspect

from eclipse_exports.config import Settings, redact
from eclipse_exports.local_services import Service, port_open, start_redis, start_seaweedfs
from eclipse_exports.models import ID_RE, ExportRequest, InvalidRequest, JobStatus
from eclipse_exports.partitions import FIRST_REPORT_WEEK
from eclipse_exports.queue.producer import enqueue_request
from eclipse_exports.queue.status import TERMINAL_STATUSES, JobStatusStore
from eclipse_exports.reports.weekly import ReportWeek
from eclipse_exports.retention import RetentionPolicy, run_cleanup
from eclipse_exports.source.access import active_workspace_ids, workspace_status
from eclipse_exports.source.demo_data import SCALES, load_demo_data
from eclipse_exports.source.engine import source_engine
from eclipse_exports.storage import ExportStorage, make_s3_client
from eclipse_exports.usage import QuotaPolicy, WorkspaceUsage

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_ACCESS_KEY, DEV_SECRET_KEY = "eclipse-dev", "eclipse-dev-secret"


def _ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _fail(message: str) -> None:
    raise click.ClickException(redact(message))


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=10)


@click.group()
def main() -> None:
    """Eclipse Exports: export Eclipse alerts, infringements and actions to S3 via Dagster."""


@main.command("demo-data")
@click.option("--database-url", help="SQLAlchemy URL (default: ECLIPSE_DATABASE_URL or the local SQLite file).")
@click.option("--scale", type=click.Choice(sorted(SCALES)), default="small", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed (and --as-of), same rows.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="End of the 90-day history (default today).")
@click.option("--workspaces", "generated", type=click.IntRange(0, 9_999), default=0, show_default=True,
              help="Extra active workspaces (ws_gen_0001…), each with an owner, admin, analyst and data.")
def demo_data(database_url: str | None, scale: str, seed: int, as_of: datetime | None, generated: int) -> None:
    """Create the source tables and fill them with demo workspaces, users and generated data."""
    settings = Settings.from_env()
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


@main.command("request")
@click.option("--workspace", required=True)
@click.option("--user", required=True)
@click.option("--resource", required=True, type=click.Choice(["alerts", "infringements", "actions", "report"]))
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "json", "jsonl", "parquet", "html"]))
@click.option("--severity", multiple=True, help="Repeat for several values.")
@click.option("--status", "statuses", multiple=True, help="Repeat for several values.")
@click.option("--brand", multiple=True, help="Brand name; repeat for several.")
@click.option("--from", "date_from", help="Inclusive, ISO-8601 with offset, e.g. 2026-11-01T00:00:00Z.")
@click.option("--to", "date_to", help="Exclusive, ISO-8601 with offset.")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True)
@click.option("--excel-compatible", is_flag=True, help="CSV only: UTF-8 BOM and CRLF line ends.")
@click.option("--delivery", type=click.Choice(["download", "email"]), default="download", show_default=True)
@click.option("--id", "job_id", help="Request id (default: a new UUID).")
def request_cmd(workspace: str, user: str, resource: str, fmt: str, severity: tuple, statuses: tuple,
                brand: tuple, date_from: str | None, date_to: str | None, compression: str,
                excel_compatible: bool, delivery: str, job_id: str | None) -> None:
    """Put an export request on the Redis stream and print its job id."""
    filters = {k: v for k, v in {"severity": list(severity) or None, "status": list(statuses) or None,
                                 "brand": list(brand) or None, "from": date_from, "to": date_to}.items() if v}
    options: dict = {"compression": compression}
    if excel_compatible:
        options["excelCompatible"] = True
    payload = {"id": job_id or str(uuid.uuid4()), "workspaceId": workspace, "userId": user,
               "resourceType": resource, "format": fmt, "filters": filters, "options": options,
               "delivery": delivery, "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        request = ExportRequest.from_payload(json.dumps(payload))
    except InvalidRequest as exc:
        _fail(f"invalid request: {exc}")
    settings = Settings.from_env()
    try:
        client = _redis(settings)
        if JobStatusStore(client, settings.retention_hours).exists(request.id):
            _fail(f"job id '{request.id}' is already in use; request ids must be unique")
        enqueue_request(client, request, settings.retention_hours)
    except redis.RedisError as exc:
        _fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    click.echo(request.id)


def _progress_line(fields: dict[str, str]) -> str:
    pct = int(fields.get("progress") or 0)
    bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
    rows = fields.get("rowsWritten") or "0"
    total = fields.get("rowCount") or "?"
    total_text = total if total == "?" else f"{int(total):,}"
    return f"[{bar}] {pct:3d}%  {int(rows):,}/{total_text} rows  {fields.get('status')}"


@main.command("status")
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Show live progress until the job ends.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to watch before giving up.")
def status_cmd(job_id: str, watch: bool, timeout: float) -> None:
    """Print a job's status hash (exit 1 if it failed or was rejected)."""
    settings = Settings.from_env()
    store = JobStatusStore(_redis(settings), settings.retention_hours)
    try:
        fields = store.get(job_id)
        deadline = time.monotonic() + timeout
        while watch and fields.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
            click.echo("\r" + _progress_line(fields) if fields else f"\rwaiting for {job_id}…", nl=False, err=True)
            time.sleep(0.5)
            fields = store.get(job_id)
        if watch and fields:
            click.echo("\r" + _progress_line(fields), err=True)
    except redis.RedisError as exc:
        _fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    if not fields:
        _fail(f"unknown job '{job_id}'")
    for key in sorted(fields):
        click.echo(f"{key}: {fields[key]}")
    if fields.get("status") in (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED):
        sys.exit(1)


LOCAL_S3_ENV = "local-s3.env"


def _use_local_s3(settings: Settings) -> Settings:
    """Point at the run command's local S3 when no endpoint is configured (it saves its address there)."""
    saved = settings.data_dir / LOCAL_S3_ENV
    if settings.s3_endpoint_url is None and saved.exists():
        for line in saved.read_text().splitlines():
            name, _, value = line.partition("=")
            os.environ.setdefault(name, value)
        return Settings.from_env()
    return settings


def _storage(settings: Settings) -> ExportStorage:
    return ExportStorage(make_s3_client(settings.s3_endpoint_url), settings.s3_bucket, settings.s3_prefix)


@main.command("url")
@click.argument("job_id")
def url_cmd(job_id: str) -> None:
    """Print a fresh presigned download URL for a completed job's live file."""
    settings = _use_local_s3(Settings.from_env())
    try:
        fields = JobStatusStore(_redis(settings), settings.retention_hours).get(job_id)
    except redis.RedisError as exc:
        _fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    if fields.get("status") != JobStatus.COMPLETED or not fields.get("filePath"):
        _fail(f"job '{job_id}' has no live file (status: {fields.get('status', 'unknown')})")
    expires = datetime.fromisoformat(fields["expiresAt"].replace("Z", "+00:00"))
    left = int((expires - datetime.now(UTC)).total_seconds())
    try:
        storage = _storage(settings)
        live = left > 0 and storage.exists(fields["filePath"])
        url = storage.presign(fields["filePath"], min(settings.download_url_ttl_seconds, left)) if live else None
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the user needs one clear line
        _fail(f"cannot reach S3 at {settings.s3_endpoint_url or 'AWS'}: {exc}")
    if url is None:
        _fail(f"the file of job '{job_id}' has expired")
    click.echo(url)


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


@main.command("report-backfill")
@click.option("--weeks", "count", type=click.IntRange(1, 520), default=1, show_default=True,
              help="The last N complete weeks (Monday 00:00 to Monday 00:00 UTC).")
@click.option("--week", "week_keys", multiple=True, help="A week by its Monday, YYYY-MM-DD; repeat (replaces --weeks).")
@click.option("--workspace", "workspace_ids", multiple=True, help="Repeat for several (default: every active one).")
@click.option("--dagster-url", default="http://127.0.0.1:3000", show_default=True,
              help="The running Dagster webserver (eclipse-exports dev).")
@click.option("--dry-run", is_flag=True, help="Print the partitions; launch nothing.")
def report_backfill(count: int, week_keys: tuple[str, ...], workspace_ids: tuple[str, ...], dagster_url: str,
                    dry_run: bool) -> None:
    """Backfill executive_report for workspaces × weeks, as the UI's "Materialize" on the asset does.

    Dagster batches the partitions into runs (ECLIPSE_REPORTS_PER_RUN each). Prints the backfill id.
    """
    settings = Settings.from_env()
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
    """
    settings = _use_local_s3(Settings.from_env())
    try:
        summary = run_cleanup(_storage(settings), _redis(settings), RetentionPolicy.from_settings(settings), as_of,
                              dry_run)
    except Exception as exc:  # noqa: BLE001 - botocore and redis raise many types; the user needs one line
        _fail(f"clean-up failed: {exc}")
    click.echo(redact(summary.render()))
    if not summary.ok:
        sys.exit(1)


@main.command("usage")
@click.option("--workspace", required=True, help="Workspace id.")
def usage_cmd(workspace: str) -> None:
    """Print a workspace's export bytes (incomplete uploads included) against its quota."""
    settings = _use_local_s3(Settings.from_env())
    quota = QuotaPolicy(settings.workspace_quota_bytes, settings.workspace_quota_overrides).quota_for(workspace)
    try:
        used = WorkspaceUsage(_redis(settings), _storage(settings)).bytes_used(workspace)
    except ValueError as exc:
        _fail(str(exc))
    except redis.RedisError as exc:
        _fail(f"cannot reach Redis at {settings.redis_url}: {exc}")
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the user needs one clear line
        _fail(f"cannot reach S3 at {settings.s3_endpoint_url or 'AWS'}: {exc}")
    share = used * 100 / quota
    click.echo(f"{workspace}: {used:,} of {quota:,} bytes ({share:.1f} %)"
               + ("  OVER QUOTA: new exports are refused" if used >= quota else ""))


def _ensure_redis(settings: Settings, services: list[Service]) -> None:
    parsed = urlparse(settings.redis_url)
    host, port = parsed.hostname or "localhost", parsed.port or 6379
    if port_open(host, port):
        click.echo(f"redis: using the server at {host}:{port}")
        return
    if host not in ("localhost", "127.0.0.1"):
        _fail(f"no Redis at {settings.redis_url} and it is not local, so none can be started")
    services.append(start_redis(port, settings.data_dir / "redis", settings.data_dir / "redis.log"))
    click.echo(f"redis: started redis-server on {port} (data in {settings.data_dir / 'redis'})")


def _ensure_s3(settings: Settings, services: list[Service]) -> Settings:
    if settings.s3_endpoint_url is None:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", DEV_ACCESS_KEY)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", DEV_SECRET_KEY)
        os.environ.setdefault("AWS_REGION", "us-east-1")
        if port_open("127.0.0.1", 8333):
            click.echo("s3: using the endpoint already on 127.0.0.1:8333")
        else:
            services.append(start_seaweedfs(settings.data_dir / "seaweedfs", settings.s3_bucket,
                                            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                            log_file=settings.data_dir / "seaweedfs.log"))
            click.echo(f"s3: started SeaweedFS on 8333 (data in {settings.data_dir / 'seaweedfs'})")
        os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:8333"
        settings = Settings.from_env()
        (settings.data_dir / LOCAL_S3_ENV).write_text("".join(
            f"{name}={os.environ[name]}\n"
            for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")))
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
    return settings


def _ensure_demo_data(settings: Settings, scale: str) -> None:
    engine = source_engine(settings.database_url)
    _ensure_sqlite_folder(settings.database_url)
    if inspect(engine).has_table("alerts"):
        click.echo(f"source database: {redact(settings.database_url)} (already has data)")
        return
    counts = load_demo_data(engine, scale)
    click.echo(f"source database: {redact(settings.database_url)} seeded with {counts['alerts']:,} alerts")


@main.command("dev")
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Dagster UI bind address.")
@click.option("--scale", type=click.Choice(sorted(SCALES)), default="small", show_default=True,
              help="Demo data scale when the source database is empty.")
def dev(port: int, host: str, scale: str) -> None:
    """Start whatever is missing (Redis, SeaweedFS S3, demo data) and run `dagster dev` with the daemon."""
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ECLIPSE_DATA_DIR"] = str(settings.data_dir)
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    services: list[Service] = []
    dagster: subprocess.Popen | None = None
    try:
        _ensure_redis(settings, services)
        settings = _ensure_s3(settings, services)
        _ensure_demo_data(settings, scale)
        click.echo(f"dagster: UI on http://{host}:{port} (DAGSTER_HOME={dagster_home})")
        command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                   "-h", host, "-p", str(port)]
        # A background shell starts us with SIGINT ignored, which children inherit; dagster dev shuts
        # down cleanly only on SIGINT, so give it the default handler back.
        dagster = subprocess.Popen(command, cwd=PROJECT_ROOT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        signal.signal(signal.SIGTERM, lambda *_: dagster.send_signal(signal.SIGINT))
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
