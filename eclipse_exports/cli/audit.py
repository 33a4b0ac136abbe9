"""``audit``: a workspace's export audit trail — read it, archive a day, verify the archives, print the public key.

``audit --workspace W`` reads the complete daily archives in S3 and the Redis stream for the days not archived
yet; ``audit archive`` materializes one ``export_audit_archive`` partition through the running Dagster
webserver over GraphQL, as the UI's "Materialize" does (no Dagster import here); ``audit verify`` checks every
archived day and exits 1 naming the first day that was modified, deleted or reordered.
"""

import json
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from eclipse_exports.cli import common

VERIFY_FAILED_EXIT = 1
FIRST_AUDIT_DAY = date(2025, 1, 1)  # the first day of export_audit_archive's partitions (partitions.py)
_RELATIVE = re.compile(r"^(\d+)\s*(m|h|d)$")


def _since(value: str | None) -> datetime | None:
    """``7d``, ``24h``, ``30m``, a date (``2026-11-02``, midnight UTC) or an ISO-8601 time with an offset."""
    if not value:
        return None
    if m := _RELATIVE.fullmatch(value.strip()):
        unit = {"m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(m[1])})
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        common.fail(f"--since {value!r}: give 7d, 24h, 30m, a date YYYY-MM-DD or an ISO-8601 time with an offset")
    return moment.astimezone(UTC)


def _workspace(value: str | None) -> str:
    from eclipse_exports.models import ID_RE

    if not value:
        raise click.UsageError("missing --workspace")
    if not ID_RE.fullmatch(value):
        common.fail(f"not a workspace id: {value!r}")
    return value


def _known_workspace(workspace_id: str) -> None:
    """Stop unless the source database knows ``workspace_id`` or the audit trail has kept or archived entries of
    it (a workspace deleted from the database keeps its trail): a typo must not add a partition and write an
    empty archive."""
    from eclipse_exports.audit.trail import AuditTrail
    from eclipse_exports.source.access import workspace_status

    settings = common.settings()
    with common.service_errors(settings):
        trail = AuditTrail(common.store(settings).client)
        if trail.first_time(workspace_id) is not None or trail.archived_days(workspace_id)[0] is not None:
            return
    if common.read_source(settings, lambda conn: workspace_status(conn, workspace_id)) is None:
        common.fail(f"unknown workspace {workspace_id!r}: not in the source database and no audit trail")


def _handles(settings):  # noqa: ANN202 - (storage, trail), both imported lazily
    from eclipse_exports.audit.trail import AuditTrail

    return common.storage(settings), AuditTrail(common.store(settings).client)


@click.group("audit", invoke_without_command=True)
@click.option("--workspace", help="Workspace id, e.g. ws_acme.")
@click.option("--job", "job_id", help="Only this job's entries.")
@click.option("--since", help="From this moment: 7d, 24h, a date YYYY-MM-DD or an ISO-8601 time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry (eventId, time, workspaceId, "
                                                      "jobId, actor, event, details).")
@click.pass_context
def audit(ctx: click.Context, workspace: str | None, job_id: str | None, since: str | None, as_json: bool) -> None:
    """Print a workspace's export audit trail, oldest first: every request, run, file, link, email, expiry.

    \b
    Examples:
      eclipse-exports audit --workspace ws_acme --since 7d
      eclipse-exports audit --workspace ws_acme --job 3f2a9c1e-… --json
      eclipse-exports audit archive --workspace ws_acme --day 2026-11-23
      eclipse-exports audit verify --workspace ws_acme
      eclipse-exports audit public-key
    """
    if ctx.invoked_subcommand is not None:
        return
    from eclipse_exports.audit.reader import read_trail

    workspace_id, start = _workspace(workspace), _since(since)
    settings = common.settings()
    count = 0
    with common.service_errors(settings):
        storage, trail = _handles(settings)
        try:
            for entry in read_trail(storage, trail, workspace_id, start, job_id=job_id):
                count += 1
                if as_json:
                    click.echo(json.dumps(entry.to_json(), sort_keys=True, ensure_ascii=False))
                else:
                    details = json.dumps(entry.details, sort_keys=True, ensure_ascii=False)
                    click.echo(f"{entry.to_json()['time']}  {entry.job_id or '-':<36}  {entry.actor:<20}  "
                               f"{entry.event:<16}  {details[:300]}")
        except (ValueError, OSError, EOFError) as exc:
            common.fail(f"an audit archive of {workspace_id} cannot be read ({exc}); "
                        f"`eclipse-exports audit verify --workspace {workspace_id}` names it")
    if not count:
        click.echo(f"no audit entries for {workspace_id}" + (f" and job {job_id}" if job_id else "")
                   + (f" since {start.isoformat()}" if start else ""), err=True)


def _private_key(settings, create: bool):  # noqa: ANN202 - an Ed25519PrivateKey, or None
    from eclipse_exports.audit.signing import KEY_FILE_NAME, SigningKeyError, load_private_key

    if not settings.audit_signing_key and not create and not (settings.data_dir / KEY_FILE_NAME).exists():
        return None
    try:
        return load_private_key(settings.audit_signing_key, settings.data_dir)
    except SigningKeyError as exc:
        common.fail(str(exc))


@audit.command("public-key")
def public_key_cmd() -> None:
    """Print the public half (PEM) of the key that signs the audit archives; `audit verify --public-key` takes it.

    \b
    Example:
      eclipse-exports audit public-key > eclipse-audit.pub
    """
    from eclipse_exports.audit.signing import public_pem

    click.echo(public_pem(_private_key(common.settings(), create=True)), nl=False)


@audit.command("verify")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
@click.option("--since", "since_day", help="Check the days from this date on, YYYY-MM-DD (default: all).")
@click.option("--public-key", "public_key_file", type=click.Path(dir_okay=False, exists=True),
              help="PEM file from `audit public-key` (default: the deployment's own key).")
def verify_cmd(workspace: str, since_day: str | None, public_key_file: str | None) -> None:
    """Check every archived day's signature, hash and chain; exit 1 naming the first bad day.

    \b
    Example:
      eclipse-exports audit verify --workspace ws_acme --since 2026-11-01
    """
    from eclipse_exports.audit.signing import SigningKeyError, load_public_key
    from eclipse_exports.audit.verify import verify_archives

    workspace_id, settings = _workspace(workspace), common.settings()
    try:
        since = date.fromisoformat(since_day) if since_day else None
    except ValueError:
        common.fail(f"--since {since_day!r} is not a date YYYY-MM-DD")
    if public_key_file:
        try:
            key = load_public_key(Path(public_key_file).read_text(encoding="utf-8"))
        except (SigningKeyError, UnicodeDecodeError) as exc:
            common.fail(f"{public_key_file}: {exc}")
    else:
        private = _private_key(settings, create=False)
        if private is None:
            common.fail(f"no audit signing key in {settings.data_dir}: nothing was archived here yet (the first "
                        "archive makes one), or set ECLIPSE_AUDIT_SIGNING_KEY, or give --public-key FILE")
        key = private.public_key()
    with common.service_errors(settings):
        storage, trail = _handles(settings)
        report = verify_archives(storage, trail, workspace_id, key, datetime.now(UTC).date(), since,
                                 settings.audit_retention_days)
    for day, why in report.problems:
        click.echo(f"{day}  {why}", err=True)
    if not report.ok:
        click.echo(f"FAILED: {workspace_id}'s audit archive of {report.first_bad} was modified, deleted or "
                   f"reordered ({len(report.problems)} problem(s) in {report.days_checked} archived day(s))", err=True)
        sys.exit(VERIFY_FAILED_EXIT)
    partial = f", {len(report.partial_days)} partial" if report.partial_days else ""
    click.echo(f"OK: {report.days_checked} archived day(s) of {workspace_id}{partial}, {report.entries:,} entries: "
               "signatures, hashes and chain intact")


@audit.command("archive")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
@click.option("--day", required=True, help="The day (UTC), YYYY-MM-DD; today gives a partial archive.")
@click.option("--dagster-url", envvar="ECLIPSE_DAGSTER_URL", default="http://127.0.0.1:3000", show_default=True,
              help="The running Dagster webserver (default: ECLIPSE_DAGSTER_URL from the env file `dev` writes).")
@click.option("--timeout", type=common.SECONDS, default=600, show_default=True, help="Seconds to wait for the run.")
def archive_cmd(workspace: str, day: str, dagster_url: str, timeout: float) -> None:
    """Materialize one day's export_audit_archive partition through the running webserver, as the UI's
    "Materialize" does; wait for it and print the archive written.

    \b
    Example:
      eclipse-exports audit archive --workspace ws_acme --day 2026-11-23
    """
    from eclipse_exports.cli.reports import ADD_PARTITION, DAGSTER_LOCATION, LAUNCH_BACKFILL, _graphql

    workspace_id = _workspace(workspace)
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        common.fail(f"--day {day!r} is not a date YYYY-MM-DD")
    today = datetime.now(UTC).date()
    if wanted > today:
        common.fail(f"{wanted} has not begun yet (today is {today} UTC); nothing to archive")
    if wanted < FIRST_AUDIT_DAY:
        common.fail(f"{wanted} is before the first audit day, {FIRST_AUDIT_DAY}")
    _known_workspace(workspace_id)
    added = _graphql(dagster_url, ADD_PARTITION, {"r": DAGSTER_LOCATION, "d": "workspaces", "k": workspace_id})
    if added["addDynamicPartition"]["__typename"] not in ("AddDynamicPartitionSuccess",
                                                          "DuplicateDynamicPartitionError"):
        common.fail(f"could not add workspace partition {workspace_id}: {added['addDynamicPartition'].get('message')}")
    launched = _graphql(dagster_url, LAUNCH_BACKFILL, {"p": {
        "partitionNames": [f"{wanted.isoformat()}|{workspace_id}"],
        "assetSelection": [{"path": ["export_audit_archive"]}],
        "title": f"export_audit_archive: {workspace_id} {wanted}"}})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        common.fail(f"Dagster did not launch the archive run: {launched.get('message', launched['__typename'])}")
    backfill = launched["backfillId"]
    click.echo(f"backfill {backfill}: {dagster_url.rstrip('/')}/runs/b/{backfill}", err=True)
    _wait(dagster_url, backfill, timeout)
    from eclipse_exports.audit.archive import read_header

    settings = common.settings()
    with common.service_errors(settings):
        storage = common.storage(settings)
        key = storage.audit_key(workspace_id, wanted)
        header = read_header(storage, key)
    if header is None:
        common.fail(f"the run ended but {key} holds no readable archive")
    click.echo(f"{key}: {'partial' if header.get('partial') else 'complete'}, chained to "
               f"{header.get('previousDay') or 'none (the first day)'}")


def _wait(dagster_url: str, backfill_id: str, timeout: float, every: float = 1.0) -> None:
    """Wait for the one-partition backfill to end; fail naming how it ended unless it materialized."""
    import time

    from eclipse_exports.cli.reports import BACKFILL_DONE, BACKFILL_STATUS, _graphql, backfill_progress

    deadline = time.monotonic() + timeout
    click.echo(f"waiting for the archive run (backfill {backfill_id}; Dagster's backfill daemon picks it up within "
               "30 s)", err=True)
    while True:
        answer = _graphql(dagster_url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            common.fail(f"cannot follow backfill {backfill_id}: {answer.get('message', answer['__typename'])}")
        _targeted, done, failed, _running = backfill_progress(answer)
        if answer["status"] in BACKFILL_DONE or done or failed:
            if failed or not done:
                common.fail(f"the archive run failed (backfill {backfill_id}, {answer['status']}): see its run in "
                            f"{dagster_url.rstrip('/')}/runs/b/{backfill_id}")
            return
        if time.monotonic() > deadline:
            common.fail(f"backfill {backfill_id} still running after {timeout:.0f} s")
        time.sleep(every)
