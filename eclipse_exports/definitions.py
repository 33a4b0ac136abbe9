"""The Dagster code location: every asset, job, sensor, schedule and resource of Eclipse Exports."""

from dagster import Definitions, in_process_executor

from eclipse_exports.assets import EXPORT_ASSETS, executive_report, export_audit_archive, export_request_queue
from eclipse_exports.jobs import (
    EXPORT_JOBS,
    dagster_history_cleanup_job,
    executive_report_job,
    export_audit_archive_job,
    export_cleanup_job,
)
from eclipse_exports.resources import default_resources
from eclipse_exports.schedules import (
    dagster_history_cleanup_schedule,
    executive_report_schedule,
    export_audit_archive_schedule,
    export_cleanup_schedule,
)
from eclipse_exports.sensors import (
    executive_report_audit_sensor,
    export_queue_position_sensor,
    export_request_queue_sensor,
    export_request_sensor,
    export_retry_watch_sensor,
    export_run_canceled_sensor,
    export_run_failure_sensor,
    workspace_partitions_sensor,
    workspace_purge_sensor,
)

defs = Definitions(
    assets=[*EXPORT_ASSETS, executive_report, export_request_queue, export_audit_archive],
    jobs=[*EXPORT_JOBS.values(), executive_report_job, export_cleanup_job, export_audit_archive_job,
          dagster_history_cleanup_job],
    schedules=[executive_report_schedule, export_cleanup_schedule, export_audit_archive_schedule,
               dagster_history_cleanup_schedule],
    sensors=[export_request_sensor, export_retry_watch_sensor, export_run_failure_sensor, export_run_canceled_sensor,
             workspace_partitions_sensor,
             workspace_purge_sensor, export_queue_position_sensor, export_request_queue_sensor,
             executive_report_audit_sensor],
    resources=default_resources(),
    executor=in_process_executor,
)
