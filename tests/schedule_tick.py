"""Tick ``executive_report_schedule`` with Dagster's own scheduler code, as the daemon would, then exit.

Usage: ``python -m tests.schedule_tick DAGSTER_HOME TICK_ISO`` (environment: the ``ECLIPSE_*`` variables).
The scheduler runs just before and just after the tick (the first pass records
the schedule's state, the second evaluates the tick and queues its runs), with
Dagster's clock frozen at each pass's moment (the schedules' catch-up guard
reads it). A process of its own keeps the in-process code location away from
the tests'.
"""

import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._scheduler.scheduler import launch_scheduled_runs

ROOT = Path(__file__).resolve().parent.parent


def tick(home: str, moment: datetime) -> None:
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(LoadableTargetOrigin(
        executable_path=sys.executable, module_name="eclipse_exports.definitions", working_directory=str(ROOT)),
        location_name="eclipse_exports"))
    with DagsterInstance.from_config(home) as instance, create_test_daemon_workspace_context(target, instance) as ctx:
        for end in (moment - timedelta(minutes=1), moment + timedelta(seconds=30)):
            with freeze_time(end):
                for result in launch_scheduled_runs(ctx, logging.getLogger("schedule_tick"), end, iteration_times={}):
                    if result is not None and hasattr(result, "message"):
                        raise SystemExit(f"scheduler error: {result.message}")


if __name__ == "__main__":
    tick(sys.argv[1], datetime.fromisoformat(sys.argv[2]))
