"""``run-workers``: one group of Celery run workers in the foreground (``eclipse_exports/launchers/run_worker.py``).

What ``dev``, the systemd unit and the Kubernetes Deployment run. Imports Dagster only when the command runs.
"""

import click

from eclipse_exports.cli import common


@click.command("run-workers")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Runs this group executes at once (one prefork child each). All groups together should offer "
                   "at least the run queue's max_concurrent_runs, or launched runs wait for a child.")
@click.option("--queue", "-Q", help="Celery queue to consume [default: the launcher's default_queue].")
@click.option("--name", "-n", help="Celery node name [default: runs-<pid>@<host>]; unique per group.")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
@click.option("--list", "list_groups", is_flag=True,
              help="List the live groups (those that reported within 15 s; of --queue only, when given) and exit; "
                   "exit 1 when none is alive.")
def run_workers_cmd(concurrency: int, queue: str | None, name: str | None, loglevel: str, list_groups: bool) -> None:
    """Run one group of Celery run workers until SIGTERM or Ctrl-C (runs in flight finish first).

    The group reads the deployment's instance ($DAGSTER_HOME/dagster.yaml, whose run launcher must be
    CeleryRunWorkerLauncher) for its broker and queue, imports the code location once, and executes the runs
    the Dagster daemon launches, any number of groups on any number of machines sharing the load.

    \b
    Examples:
      eclipse-exports run-workers                       # beside a running `eclipse-exports dev` (it starts its own)
      eclipse-exports run-workers --concurrency 4 --name runs-b@%h
      eclipse-exports run-workers --list                # which groups are alive, on which hosts
    """
    if list_groups:
        _list_groups(queue)
        return
    from eclipse_exports.launchers.run_worker import RunWorkersRefused, run_workers

    try:
        run_workers(concurrency, queue, name, loglevel=loglevel, say=lambda line: click.echo(line, err=True))
    except RunWorkersRefused as exc:
        common.fail(str(exc))


def _list_groups(queue: str | None) -> None:
    """Print the live worker groups as a table, from their records on ``ECLIPSE_REDIS_URL`` (the launcher's broker
    unless ``dagster.yaml`` names another); exit 1 when none is alive."""
    from eclipse_exports.queue.run_workers import RunWorkerRegistry

    settings = common.settings()
    with common.service_errors(settings):
        nodes = RunWorkerRegistry(common.store(settings).client).live_nodes(queue)
    if not nodes:
        from eclipse_exports.config import redact

        click.echo(redact(f"no live run worker group{f' on queue {queue}' if queue else ''} reports to "
                          f"{settings.redis_url} (ECLIPSE_REDIS_URL): start `eclipse-exports run-workers` (the run "
                          "command starts its own)"), err=True)
        raise SystemExit(common.JOB_FAILED_EXIT)
    rows = [("GROUP", "HOST", "PID", "CHILDREN", "QUEUES", "SEEN")] + [
        (n.name, n.host, str(n.pid), str(n.concurrency), ",".join(n.queues), f"{n.seen_seconds_ago:.0f} s ago")
        for n in nodes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
