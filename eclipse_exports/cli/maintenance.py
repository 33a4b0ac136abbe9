"""Operator commands: ``demo-data`` (fill a source database), ``cleanup`` (the retention pass, now) and
``usage`` (a workspace's bytes against its quota). Each runs the same Dagster-free code the schedules and
runs use.
"""

import os
import sys
import time
from datetime import UTC, datetime

import click

from eclipse_exports.cli import common

# The scales of eclipse_exports.source.demo_data.SCALES (a test keeps them equal), named here so that `--help`
# need not import SQLAlchemy.
DEMO_SCALES = ("large", "small", "tiny")

@click.command("demo-data")
@click.option("--database-url", help="SQLAlchemy URL (default: ECLIPSE_DATABASE_URL or the local SQLite file).")
@click.option("--scale", type=click.Choice(DEMO_SCALES), default="small", show_default=True)
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
    from eclipse_exports.config import redact
    from eclipse_exports.local.runtime import ensure_sqlite_folder
    from eclipse_exports.source.demo_data import load_demo_data
    from eclipse_exports.source.engine import source_engine

    settings = common.settings()
    url = database_url or settings.database_url
    ensure_sqlite_folder(url)
    started = time.monotonic()
    try:
        counts = load_demo_data(source_engine(url), scale, seed, as_of.replace(tzinfo=UTC) if as_of else None,
                                generated_workspaces=generated)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, redacted, as a CLI error
        common.fail(f"demo data failed: {exc}")
    summary = ", ".join(f"{n:,} {t}" for t, n in counts.items())
    click.echo(f"demo data ({scale}, seed {seed}) in {redact(url)}: {summary} [{time.monotonic() - started:.1f}s]")


def _parse_as_of(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601 (e.g. 2026-12-01T09:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("cleanup")
@click.option("--as-of", "as_of", callback=_parse_as_of,
              help="Judge ages as of this ISO-8601 moment (default now; without offset: UTC).")
@click.option("--dry-run", is_flag=True, help="List and count what is due; delete nothing.")
@click.option("--history/--no-history", default=None,
              help="Also prune Dagster's run history (what dagster_history_cleanup_job runs) "
                   "[default: when DAGSTER_HOME is set].")
def cleanup_cmd(as_of: datetime | None, dry_run: bool, history: bool | None) -> None:
    """Run the retention clean-up now (what export_cleanup_schedule runs) and print its summary.

    With DAGSTER_HOME set, Dagster's own history is pruned too (finished runs older than
    ECLIPSE_RUN_HISTORY_DAYS as of the same moment). Exits 1 when any deletion, abort or update failed
    (the next run retries it).

    \b
    Examples:
      eclipse-exports cleanup --dry-run
      eclipse-exports cleanup --as-of 2026-12-01T09:00:00Z
    """
    from eclipse_exports.config import redact
    from eclipse_exports.retention.cleanup import run_cleanup
    from eclipse_exports.retention.policy import RetentionPolicy

    settings = common.settings()
    with common.service_errors(settings):
        summary = run_cleanup(common.storage(settings), common.store(settings).client,
                              RetentionPolicy.from_settings(settings), as_of, dry_run)
    click.echo(redact(summary.render()))
    ok = summary.ok
    if history or (history is None and os.environ.get("DAGSTER_HOME")):
        ok = _prune_history(settings.run_history_days, as_of or datetime.now(UTC), dry_run) and ok
    if not ok:
        sys.exit(1)


def _prune_history(days: int, as_of: datetime, dry_run: bool) -> bool:
    from eclipse_exports.config import redact
    from eclipse_exports.resources.run_history import prune_instance_history

    if not os.environ.get("DAGSTER_HOME"):
        common.fail("--history needs DAGSTER_HOME (the Dagster instance whose runs are pruned)")
    summary = prune_instance_history(as_of, days, dry_run)
    click.echo(redact(summary.render()))
    return summary.ok


@click.command("usage")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
def usage_cmd(workspace: str) -> None:
    """Print a workspace's export bytes (incomplete uploads included) against its quota.

    \b
    Example:
      eclipse-exports usage --workspace ws_acme
    """
    from eclipse_exports.models import ID_RE
    from eclipse_exports.retention.usage import QuotaPolicy, WorkspaceUsage

    settings = common.settings()
    if not ID_RE.fullmatch(workspace):
        common.fail(f"workspace id {workspace!r} does not match the CONTRACT id pattern {ID_RE.pattern}")
    quota = QuotaPolicy(settings.workspace_quota_bytes, settings.workspace_quota_overrides).quota_for(workspace)
    with common.service_errors(settings):
        used = WorkspaceUsage(common.store(settings).client, common.storage(settings)).bytes_used(workspace)
    share = used * 100 / quota
    click.echo(f"{workspace}: {used:,} of {quota:,} bytes ({share:.1f} %)"
               + ("  OVER QUOTA: new exports are refused" if used >= quota else ""))
