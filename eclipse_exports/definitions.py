"""The Dagster code location: every asset, job, sensor and resource of Eclipse Exports."""

from dagster import Definitions, in_process_executor

from eclipse_exports.assets import EXPORT_ASSETS
from eclipse_exports.jobs import EXPORT_JOBS
from eclipse_exports.resources import default_resources
from eclipse_exports.sensors import export_request_sensor, export_run_failure_sensor, workspace_partitions_sensor

defs = Definitions(
    assets=EXPORT_ASSETS,
    jobs=list(EXPORT_JOBS.values()),
    sensors=[export_request_sensor, export_run_failure_sensor, workspace_partitions_sensor],
    resources=default_resources(),
    executor=in_process_executor,
)
