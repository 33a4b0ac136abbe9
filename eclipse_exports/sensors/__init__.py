"""Dagster sensors: request intake, run-failure and run-cancel backstops, run-retry watch, workspace partitions and
purge, queue positions and queue health, the weekly reports' audit entries."""

from eclipse_exports.sensors.export_requests import export_request_sensor
from eclipse_exports.sensors.queue_health import export_request_queue_sensor
from eclipse_exports.sensors.queue_positions import export_queue_position_sensor
from eclipse_exports.sensors.report_audit import executive_report_audit_sensor
from eclipse_exports.sensors.retry_watch import export_retry_watch_sensor
from eclipse_exports.sensors.run_cancellations import export_run_canceled_sensor
from eclipse_exports.sensors.run_failures import export_run_failure_sensor
from eclipse_exports.sensors.workspace_partitions import workspace_partitions_sensor
from eclipse_exports.sensors.workspace_purge import workspace_purge_sensor

__all__ = ["executive_report_audit_sensor", "export_queue_position_sensor", "export_request_queue_sensor",
           "export_request_sensor",
           "export_retry_watch_sensor", "export_run_canceled_sensor", "export_run_failure_sensor",
           "workspace_partitions_sensor", "workspace_purge_sensor"]
