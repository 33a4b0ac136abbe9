"""The ``eclipse-exports`` command line: one module per command group, each loaded when its command runs.

- :mod:`~eclipse_exports.cli.requests`: ``request``, ``status``, ``url``, ``jobs``, ``retry``, ``dead-letters``;
- :mod:`~eclipse_exports.cli.reports`: ``report-url``, ``report-backfill``;
- :mod:`~eclipse_exports.cli.maintenance`: ``demo-data``, ``cleanup``, ``usage``;
- :mod:`~eclipse_exports.cli.local`: ``dev``, the run command;
- :mod:`~eclipse_exports.cli.metrics`: ``metrics``, the Prometheus metrics;
- :mod:`~eclipse_exports.cli.workers`: ``run-workers``, one group of Celery run workers;
- :mod:`~eclipse_exports.cli.audit`: ``audit`` and ``audit archive``, ``audit verify``, ``audit public-key``;
- :mod:`~eclipse_exports.cli.common`: what they share (errors, settings, Redis and S3 handles).

Every command but ``dev`` and ``demo-data`` first reads the env file the running ``dev`` wrote
(``$ECLIPSE_DATA_DIR/env.sh``, default ``./.local/env.sh``) for the settings the shell does not set itself,
so a second shell in the project folder needs no setup. Errors go to stderr with exit status 2 (1 is kept
for "the job failed, was rejected or expired" from ``status`` and "something could not be cleaned" from
``cleanup``), and name the service and the cause: Redis or S3 unreachable, or their credentials missing or
refused. Nothing else in the project imports this package.
"""

import importlib
import os

import click

from eclipse_exports.cli import common

# Command name -> "module:attribute"; a command's module is imported only when that command runs (or `--help`
# lists it: each module imports only click and the standard library at its top).
COMMANDS = {
    "demo-data": "eclipse_exports.cli.maintenance:demo_data",
    "request": "eclipse_exports.cli.requests:request_cmd",
    "status": "eclipse_exports.cli.requests:status_cmd",
    "url": "eclipse_exports.cli.requests:url_cmd",
    "jobs": "eclipse_exports.cli.requests:jobs_cmd",
    "retry": "eclipse_exports.cli.requests:retry_cmd",
    "dead-letters": "eclipse_exports.cli.requests:dead_letters_cmd",
    "report-url": "eclipse_exports.cli.reports:report_url",
    "report-backfill": "eclipse_exports.cli.reports:report_backfill",
    "cleanup": "eclipse_exports.cli.maintenance:cleanup_cmd",
    "usage": "eclipse_exports.cli.maintenance:usage_cmd",
    "dev": "eclipse_exports.cli.local:dev",
    "metrics": "eclipse_exports.cli.metrics:metrics_cmd",
    "run-workers": "eclipse_exports.cli.workers:run_workers_cmd",
    "audit": "eclipse_exports.cli.audit:audit",
}
INTERRUPTED_EXIT = 130  # 128 + SIGINT
# Commands that make their own settings (they do not talk to a running product).
WITHOUT_ENV_FILE = ("dev", "demo-data", None)


class LazyGroup(click.Group):
    """A click group whose commands are imported by name when used (click's documented lazy-loading pattern)."""

    def __init__(self, *args, commands: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy_commands)

    def invoke(self, ctx: click.Context):
        """Run the command; an error no command foresaw is one line (exit 1), its traceback only with
        ``ECLIPSE_DEBUG=1``: a command-line tool answers bad input with a message, never a Python traceback.
        Ctrl-C ends a command with "Aborted!" and exit 130, the shells' code for SIGINT (exit 1 is ``status``
        saying the job failed)."""
        try:
            return super().invoke(ctx)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted!", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence of every command
            if os.environ.get("ECLIPSE_DEBUG") == "1":
                raise
            from eclipse_exports.config import redact

            message = redact(" ".join(str(exc).split()))[:500]
            click.echo(f"Error: {type(exc).__name__}: {message} (ECLIPSE_DEBUG=1 shows the traceback)", err=True)
            ctx.exit(1)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return None
        module, _, attribute = self.lazy_commands[cmd_name].partition(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, commands=COMMANDS)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Eclipse Exports: export Eclipse alerts, infringements and actions to S3 via Dagster.

    \b
    Example (with `eclipse-exports dev` running in another shell of the project folder):
      JOB=$(eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts --format csv)
      eclipse-exports status "$JOB" --watch
    """
    if ctx.invoked_subcommand not in WITHOUT_ENV_FILE:
        from eclipse_exports.config import data_dir_from_env
        from eclipse_exports.local.env_file import apply_env_file

        common.FROM_ENV_FILE.update(apply_env_file(os.environ, data_dir_from_env()))
