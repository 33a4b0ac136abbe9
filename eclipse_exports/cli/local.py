"""``eclipse-exports dev``: the run command. The work is :func:`eclipse_exports.local.runtime.run_dev`; this
module gives it a command line and turns its refusals into one-line errors.
"""

import click

from eclipse_exports.cli import common
from eclipse_exports.cli.maintenance import DEMO_SCALES
from eclipse_exports.local.deployment import DEFAULT_REDIS_PORT, DEFAULT_S3_PORT, DEFAULT_UI_PORT


@click.command("dev")
@click.option("--port", type=int, help=f"Dagster UI port [default: {DEFAULT_UI_PORT}, or the next free one].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Dagster UI bind address.")
@click.option("--redis-port", type=int,
              help=f"Port of the redis-server dev starts [default: {DEFAULT_REDIS_PORT}, or the next free one]. "
                   "With ECLIPSE_REDIS_URL set, dev uses that Redis instead.")
@click.option("--s3-port", type=int,
              help=f"Port of the SeaweedFS S3 API dev starts [default: {DEFAULT_S3_PORT}, or the next free one]. "
                   "With AWS_ENDPOINT_URL set, dev uses that endpoint instead.")
@click.option("--scale", type=click.Choice(DEMO_SCALES), default="small", show_default=True,
              help="Demo data scale when the source database is empty.")
@click.option("--run-workers", type=click.IntRange(0, 64), default=4, show_default=True,
              help="Celery run workers (children of one worker group) dev starts beside Dagster; 0 for none "
                   "(start `eclipse-exports run-workers` yourself).")
def dev(port: int | None, host: str, redis_port: int | None, s3_port: int | None, scale: str,
        run_workers: int) -> None:
    """Start Redis, SeaweedFS (S3) and demo data as needed, the Celery run workers, then `dagster dev` with the daemon.

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
    from eclipse_exports.config import SettingsError
    from eclipse_exports.local.deployment import DeploymentRefused
    from eclipse_exports.local.runtime import run_dev

    try:
        run_dev(port, host, redis_port, s3_port, scale, click.echo, run_workers=run_workers)
    except SettingsError as exc:
        common.fail(f"bad setting: {exc}")
    except DeploymentRefused as exc:
        common.fail(str(exc))
