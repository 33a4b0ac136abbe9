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
def run_workers_cmd(concurrency: int, queue: str | None, name: str | None, loglevel: str) -> None:
    """Run one group of Celery run workers until SIGTERM or Ctrl-C (runs in flight finish first).

    The group reads the deployment's instance ($DAGSTER_HOME/dagster.yaml, whose run launcher must be
    CeleryRunWorkerLauncher) for its broker and queue, imports the code location once, and executes the runs
    the Dagster daemon launches, any number of groups on any number of machines sharing the load.

    \b
    Examples:
      eclipse-exports run-workers                       # beside a running `eclipse-exports dev` (it starts its own)
      eclipse-exports run-workers --concurrency 4 --name runs-b@%h
    """
    from eclipse_exports.launchers.run_worker import RunWorkersRefused, run_workers

    try:
        run_workers(concurrency, queue, name, loglevel=loglevel, say=lambda line: click.echo(line, err=True))
    except RunWorkersRefused as exc:
        common.fail(str(exc))
