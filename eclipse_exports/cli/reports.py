"""Commands about the weekly executive reports: ``report-url`` (a link to one) and ``report-backfill`` (render
many through the running Dagster webserver, as the UI's "Materialize" does).

``report-url`` needs only S3; ``report-backfill`` reads the source database for the active workspaces and
talks to Dagster over GraphQL, so neither imports Dagster itself.
"""

import json
import urllib.request
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from eclipse_exports.cli import common

if TYPE_CHECKING:
    from eclipse_exports.reports.weekly import ReportWeek

DAGSTER_LOCATION = {"repositoryLocationName": "eclipse_exports", "repositoryName": "__repository__"}
ADD_PARTITION = """mutation($r: RepositorySelector!, $d: String!, $k: String!) {
  addDynamicPartition(repositorySelector: $r, partitionsDefName: $d, partitionKey: $k) {
    __typename ... on Error { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions assetBackfillData { assetBackfillStatuses { __typename
    ... on AssetPartitionsStatusCounts { numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
      numPartitionsFailed } } } }
  ... on Error { message } } }"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
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
        common.fail(f"cannot reach the Dagster webserver at {dagster_url}: {exc}")
    if payload.get("errors"):
        common.fail(f"Dagster refused the request: {payload['errors'][0].get('message')}")
    return payload["data"]


def _report_weeks(count: int, keys: tuple[str, ...], now: datetime) -> list["ReportWeek"]:
    from eclipse_exports.reports.weekly import FIRST_REPORT_WEEK, ReportWeek

    latest = ReportWeek.last_complete(now)
    if not keys:
        weeks = [ReportWeek(latest.start - timedelta(days=7 * n)) for n in reversed(range(count))]
        return [week for week in weeks if week.key >= FIRST_REPORT_WEEK]
    weeks = []
    for key in keys:
        try:
            week = ReportWeek.from_key(key)
        except ValueError as exc:
            common.fail(f"--week {key!r}: {exc} (give the Monday of the week as YYYY-MM-DD)")
        if not FIRST_REPORT_WEEK <= week.key <= latest.key:
            common.fail(f"--week {key}: reports can be made for the weeks from {FIRST_REPORT_WEEK} to {latest.key} "
                        "(a week's report once the week has ended)")
        weeks.append(week)
    return sorted(set(weeks), key=lambda w: w.start)


@click.command("report-url")
@click.argument("workspace_id")
@click.argument("week", metavar="WEEK")
@click.option("--pdf", is_flag=True, help="A link to the report's PDF (A4, to print or forward) instead of its page.")
def report_url(workspace_id: str, week: str, pdf: bool) -> None:
    """Print a presigned link to a workspace's weekly executive report (it opens in the browser).

    WEEK is any date of the week, YYYY-MM-DD; the report is the one of the week starting that Monday.

    \b
    Example:
      eclipse-exports report-url ws_acme 2026-11-23
      eclipse-exports report-url ws_acme 2026-11-23 --pdf
    """
    from eclipse_exports.models import ID_RE

    settings = common.settings()
    try:
        day = date.fromisoformat(week)
    except ValueError:
        common.fail(f"WEEK must be a date, YYYY-MM-DD (got {week!r})")
    if not ID_RE.fullmatch(workspace_id):
        common.fail(f"not a workspace id: {workspace_id!r}")
    monday = day - timedelta(days=day.weekday())
    with common.service_errors(settings):
        storage = common.storage(settings)
        key = storage.report_key(workspace_id, monday, "pdf" if pdf else "html")
        if not storage.exists(key):
            if monday + timedelta(days=7) > datetime.now(UTC).date():
                common.fail(f"the week of {monday.isoformat()} has not ended yet: its report is made after it "
                            f"ends (the weekly schedule, {settings.report_cron} UTC, or report-backfill)")
            from eclipse_exports.reports.weekly import FIRST_REPORT_WEEK

            if monday.isoformat() < FIRST_REPORT_WEEK:
                common.fail(f"no executive report{' PDF' if pdf else ''} of '{workspace_id}' for the week of "
                            f"{monday.isoformat()}: reports are made for the weeks from {FIRST_REPORT_WEEK} on")
            common.fail(f"no executive report{' PDF' if pdf else ''} of '{workspace_id}' for the week of "
                        f"{monday.isoformat()} (looked for "
                        f"{key}); for a workspace of the source database, `eclipse-exports report-backfill "
                        f"--workspace {workspace_id} --week {monday.isoformat()}` makes it")
        url = storage.presign(key, settings.download_url_ttl_seconds, workspace_id=workspace_id)
        common.audit_link(settings, workspace_id, None, "report-url", key)
    click.echo(url)


@click.command("report-backfill")
@click.option("--weeks", "count", type=click.IntRange(1, 520), default=1, show_default=True,
              help="The last N complete weeks (Monday 00:00 to Monday 00:00 UTC).")
@click.option("--week", "week_keys", multiple=True, help="A week by its Monday, YYYY-MM-DD; repeat (replaces --weeks).")
@click.option("--workspace", "workspace_ids", multiple=True, help="Repeat for several (default: every active one).")
@click.option("--dagster-url", envvar="ECLIPSE_DAGSTER_URL", default="http://127.0.0.1:3000", show_default=True,
              help="The running Dagster webserver (default: ECLIPSE_DAGSTER_URL from the env file `dev` writes).")
@click.option("--dry-run", is_flag=True, help="Print the partitions; launch nothing.")
@click.option("--wait", is_flag=True, help="Wait for the reports, showing progress; exit 1 if any failed.")
@click.option("--timeout", type=common.SECONDS, default=3600, show_default=True, help="Seconds to wait with --wait.")
@click.option("--email", is_flag=True, help="Also mail each report to its owners and admins (default: store only; "
                                            "the run tag eclipse/email=true).")
def report_backfill(count: int, week_keys: tuple[str, ...], workspace_ids: tuple[str, ...], dagster_url: str,
                    dry_run: bool, wait: bool, timeout: float, email: bool) -> None:
    """Backfill executive_report for workspaces × weeks, as the UI's "Materialize" on the asset does.

    Dagster batches the partitions into runs (ECLIPSE_REPORTS_PER_RUN each). Prints the backfill id. The reports
    are rendered again and stored; they are mailed only with --email.

    \b
    Example:
      eclipse-exports report-backfill --weeks 4                  # every active workspace, last 4 weeks
      eclipse-exports report-backfill --weeks 1 --workspace ws_acme --wait   # and wait for it, with progress
    """
    from eclipse_exports.models import ID_RE
    from eclipse_exports.source.access import active_workspace_ids, workspace_status

    settings = common.settings()
    weeks = _report_weeks(count, week_keys, datetime.now(UTC))

    def read(conn) -> tuple[dict[str, str | None], list[str]]:  # noqa: ANN001 - a SQLAlchemy Connection
        statuses = {w: workspace_status(conn, w) if ID_RE.fullmatch(w) else None for w in workspace_ids}
        return statuses, list(dict.fromkeys(workspace_ids)) or active_workspace_ids(conn)

    statuses, workspaces = common.read_source(settings, read)
    if unknown := [w for w, status in statuses.items() if status is None]:
        common.fail(f"unknown workspace(s): {', '.join(unknown)}")
    if inactive := [f"{w} ({status})" for w, status in statuses.items() if status != "active"]:
        common.fail(f"no reports for workspace(s) that are not active: {', '.join(inactive)} (like every request "
                    "for them; the weekly schedule skips them too)")
    if not workspaces:
        common.fail("no active workspace to report on")
    keys = [f"{week.key}|{workspace_id}" for week in weeks for workspace_id in workspaces]
    click.echo(f"{len(keys)} partition(s): {len(workspaces)} workspace(s) × {len(weeks)} week(s) "
               f"({weeks[0].key} to {weeks[-1].key})", err=True)
    if email and not settings.smtp_url:
        click.echo("warning: ECLIPSE_SMTP_URL is unset, so --email mails nobody: the reports are stored only "
                   "(set it where the run workers run; docs/reports.md, 'Seeing the mails locally')", err=True)
    if dry_run:
        click.echo("\n".join(keys))
        return
    for workspace_id in workspaces:  # a workspace the partitions sensor has not added yet
        result = _graphql(dagster_url, ADD_PARTITION, {"r": DAGSTER_LOCATION, "d": "workspaces", "k": workspace_id})
        outcome = result["addDynamicPartition"]
        if outcome["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            common.fail(f"could not add workspace partition {workspace_id}: {outcome.get('message')}")
    result = _graphql(dagster_url, LAUNCH_BACKFILL, {"p": {
        "partitionNames": keys, "assetSelection": [{"path": ["executive_report"]}],
        "title": f"executive_report: {len(workspaces)} workspace(s) × {len(weeks)} week(s)",
        "tags": [{"key": "eclipse/email", "value": "true" if email else "false"}]}})
    outcome = result["launchPartitionBackfill"]
    if outcome["__typename"] != "LaunchBackfillSuccess":
        common.fail(f"Dagster did not launch the backfill: {outcome.get('message', outcome['__typename'])}")
    click.echo(f"backfill {outcome['backfillId']}: {dagster_url.rstrip('/')}/runs/b/{outcome['backfillId']}",
               err=True)
    click.echo(outcome["backfillId"])
    if wait:
        _wait_for_backfill(dagster_url, outcome["backfillId"], timeout)


def backfill_progress(backfill: dict) -> tuple[int, int, int, int]:
    """(targeted, materialized, failed, in progress) partitions of an asset backfill's GraphQL answer."""
    counts = [s for s in (backfill.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
              if s.get("__typename") == "AssetPartitionsStatusCounts"]
    targeted = sum(c["numPartitionsTargeted"] for c in counts) or int(backfill.get("numPartitions") or 0)
    return (targeted, sum(c["numPartitionsMaterialized"] for c in counts),
            sum(c["numPartitionsFailed"] for c in counts), sum(c["numPartitionsInProgress"] for c in counts))


def backfill_line(backfill: dict) -> str:
    """``[#######------] 12/40 reports  2 failed  4 in progress  REQUESTED`` (what ``--wait`` redraws)."""
    targeted, done, failed, running = backfill_progress(backfill)
    share = (done + failed) / targeted if targeted else 0.0
    bar = "#" * int(share * 25) + "-" * (25 - int(share * 25))
    waiting = "  (Dagster's backfill daemon picks it up within 30 s)" if not (done or failed or running) and \
        backfill["status"] == "REQUESTED" else ""
    return (f"[{bar}] {done}/{targeted} reports" + (f"  {failed} failed" if failed else "") +
            (f"  {running} in progress" if running else "") + f"  {backfill['status']}" + waiting)


def _wait_for_backfill(dagster_url: str, backfill_id: str, timeout: float, every: float = 2.0) -> None:
    """Redraw the backfill's progress on stderr until it ends; exit 1 when a report failed or it was canceled."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        answer = _graphql(dagster_url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            common.fail(f"cannot follow backfill {backfill_id}: {answer.get('message', answer['__typename'])}")
        line = backfill_line(answer)
        finished = answer["status"] in BACKFILL_DONE
        click.echo("\r" + line.ljust(90), nl=finished, err=True)
        if finished:
            break
        if time.monotonic() > deadline:
            click.echo("", err=True)
            common.fail(f"backfill {backfill_id} still running after {timeout:.0f} s: {line.strip()}")
        time.sleep(every)
    _targeted, _done, failed, _running = backfill_progress(answer)
    if failed or answer["status"] in ("COMPLETED_FAILED", "FAILED", "CANCELED"):
        raise SystemExit(common.JOB_FAILED_EXIT)
