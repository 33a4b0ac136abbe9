"""Asset jobs: one per exported resource (launched by the request sensor) and ``executive_report_job``
(launched by ``executive_report_schedule``), all run in-process.

The in-process executor keeps a one-step run to a single process
(about half the start-up time and memory of the multiprocess executor).
"""

from dagster import AssetSelection, define_asset_job, in_process_executor

from eclipse_exports.models import ResourceType

EXPORT_RESOURCES = (ResourceType.ALERTS, ResourceType.INFRINGEMENTS, ResourceType.ACTIONS, ResourceType.REPORT)


def export_job_name(resource: ResourceType) -> str:
    """``alerts_export_job`` and so on."""
    return f"{ResourceType(resource).value}_export_job"


EXPORT_JOBS = {
    resource: define_asset_job(
        name=export_job_name(resource),
        selection=AssetSelection.assets(f"{resource.value}_export"),
        executor_def=in_process_executor,
        description=f"Materializes one workspace partition of {resource.value}_export for one export request.",
    )
    for resource in EXPORT_RESOURCES
}

executive_report_job = define_asset_job(
    name="executive_report_job",
    selection=AssetSelection.assets("executive_report"),
    executor_def=in_process_executor,
    description="Renders, stores and mails the weekly executive reports of a range of workspace × week partitions.",
)
