"""The ``executive_report`` asset: one workspace's weekly report per partition (workspace × week).

A run may cover one partition or, for backfills and the weekly schedule, a
range of them (``BackfillPolicy.multi_run``; ``ECLIPSE_REPORTS_PER_RUN``
partitions per run, default 20), so one Python process renders many reports.
Dagster 1.13 cannot attach a ``MaterializeResult`` or an ``AssetCheckResult``
to one partition of a ranged run, so the asset emits, for each partition as
soon as it is done, its own ``AssetMaterialization`` (its metadata: workspace,
week, headline counts, bytes, S3 URI, how many it was mailed to) and its own
``report_delivered`` check evaluation; ``output_required=False`` keeps Dagster
from adding a second, metadata-less materialization for the whole range.

The work is :mod:`eclipse_exports.reports.weekly`. Every report of the run is
written first, then mailed, so a failure while writing sends no email; the
partitions that failed fail the step (the others stay materialized, which
Dagster's backfills count correctly for ranged runs), and a retry renders
only the partitions this run (or the run it retries) has not materialized, so
nobody is mailed twice. An SMTP failure never fails the step: the report is
kept and ``report_delivered`` fails on that partition with the cause.

Who is mailed (mail once): a run of ``executive_report_schedule`` (or its
retry) mails a partition unless a materialization of it already mailed
someone (``mailed_to`` > 0), so a cron change or a tick evaluated again never
mails a week twice; a backfill, a manual materialization or a re-execution
re-renders and mails only when asked, with the run tag ``eclipse/email=true``
(``report-backfill --email``); ``eclipse/email=false`` never mails.

Each stored report is read back and verified (``checks/file_checks.py``:
``file_intact`` and ``rows_complete``, per partition) before it is mailed; one
that fails is recorded with its failed checks, not mailed, and fails the step.
"""

from collections.abc import Callable, Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    AssetRecordsFilter,
    BackfillPolicy,
    Backoff,
    DagsterEventType,
    Failure,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
)

# Not exported by dagster 1.13, but the only way to tie a check evaluation to one partition's materialization.
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from eclipse_exports.checks import FILE_CHECK_NAMES, file_check_evaluations, file_check_specs
from eclipse_exports.config import Settings, known_secrets, redact
from eclipse_exports.exports.verification import FileVerification, verify_export_file
from eclipse_exports.models import utc_now
from eclipse_exports.partitions import executive_report_partitions
from eclipse_exports.reports.pdf import release_pdf_printer
from eclipse_exports.reports.publish import WrittenReport
from eclipse_exports.reports.weekly import (
    DeliveryOutcome,
    DeliveryStatus,
    MailSettings,
    ReportWeek,
    deliver_weekly_report,
    publish_weekly_report,
)
from eclipse_exports.resources import ExportLimitsResource, ExportStorageResource, SmtpResource, SourceDatabaseResource

ASSET_NAME = "executive_report"
REPORT_DELIVERED = "report_delivered"
REPORTS_PER_RUN = Settings.from_env().reports_per_run
RETRY_POLICY = RetryPolicy(max_retries=2, delay=1, backoff=Backoff.EXPONENTIAL)
# Dagster 1.13's tags on a run re-executed from (asset) failure.
RESUME_TAGS = ("dagster/is_resume_retry", "dagster/is_asset_resume_retry")
EMAIL_TAG = "eclipse/email"
SCHEDULE_NAME, SCHEDULE_NAME_TAG, PARENT_RUN_TAG = "executive_report_schedule", "dagster/schedule_name", \
    "dagster/parent_run_id"


def mail_policy(tags: dict[str, str]) -> str:
    """``always`` (asked: ``eclipse/email=true``), ``never`` (``eclipse/email=false``, or a run no schedule
    launched and nobody asked to mail), or ``once`` (a run of the weekly schedule, or its automatic retry)."""
    asked = tags.get(EMAIL_TAG, "").strip().lower()
    if asked in ("true", "false"):
        return "always" if asked == "true" else "never"
    if tags.get(SCHEDULE_NAME_TAG) == SCHEDULE_NAME and (PARENT_RUN_TAG not in tags or tags.get(
            "dagster/retry_number") or any(tags.get(tag) == "true" for tag in RESUME_TAGS)):
        return "once"
    return "never"


def _mail(policy: str, key: str, mailed_before: set[str], deliver: Callable[[], DeliveryOutcome]) -> DeliveryOutcome:
    """Mail partition ``key``'s report by ``deliver`` when ``policy`` says so; else the outcome saying why not.

    ``mailed_before`` holds the partitions an earlier materialization already mailed (:func:`_mailed_partitions`).
    """
    if policy == "never":
        return DeliveryOutcome(DeliveryStatus.NOT_ASKED)
    if policy == "once" and key in mailed_before:
        return DeliveryOutcome(DeliveryStatus.ALREADY_DELIVERED)
    return deliver()


def _mailed_partitions(context: AssetExecutionContext, keys: list[str], page: int = 500) -> set[str]:
    """Which of partitions ``keys`` a materialization already mailed someone (``mailed_to`` > 0).

    One paged read of the event log for the whole run, not one per partition.
    """
    mailed: set[str] = set()
    if not keys:
        return mailed
    records_filter, cursor = AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=keys), None
    while True:
        result = context.instance.fetch_materializations(records_filter, limit=page, cursor=cursor)
        for record in result.records:
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            if getattr(meta.get("mailed_to"), "value", 0) and record.partition_key:
                mailed.add(record.partition_key)
        if not result.has_more:
            return mailed
        cursor = result.cursor


def _materialized_before(context: AssetExecutionContext) -> set[str]:
    """Partitions this run already materialized (a step retry), or the failed runs it resumes did.

    Dagster re-executes a failed run "from failure" with the whole step, so the partitions its parents
    finished (and mailed) are skipped; a re-execution of everything renders and mails them again.
    """
    seen: set[str] = set()
    run = context.run
    while run is not None:
        records = context.instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        seen |= {r.partition_key for r in records.records if r.asset_key == context.asset_key and r.partition_key}
        resumed = any(run.tags.get(tag) == "true" for tag in RESUME_TAGS)
        run = context.instance.get_run_by_id(run.parent_run_id) if resumed and run.parent_run_id else None
    return seen


def _metadata(report: WrittenReport, outcome: DeliveryOutcome, bucket: str, workspace_id: str,
              week: ReportWeek) -> dict:
    data = report.data
    metadata = {
        "workspace_id": workspace_id,
        "week": week.key,
        "new_alerts": MetadataValue.int(data.alerts_new),
        "new_critical_alerts": MetadataValue.int(data.critical_alerts_new),
        "alerts_resolved": MetadataValue.int(data.alerts_resolved),
        "infringements_opened": MetadataValue.int(data.infringements_opened),
        "open_infringements_at_period_end": MetadataValue.int(data.open_infringement_count),
        "takedown_actions_completed": MetadataValue.int(data.actions_completed),
        "byte_size": MetadataValue.int(report.byte_size),
        "s3_uri": MetadataValue.url(f"s3://{bucket}/{report.key}"),
        **({"pdf_s3_uri": MetadataValue.url(f"s3://{bucket}/{report.pdf.key}"),
            "pdf_pages": MetadataValue.int(report.pdf.pages),
            "pdf_byte_size": MetadataValue.int(report.pdf.byte_size)} if report.pdf else {}),
        "mailed_to": MetadataValue.int(outcome.sent),
        "delivery": outcome.description,
        "delivery_status": outcome.status.value,
    }
    if data.takedown_success_rate is not None:
        metadata["takedown_success_rate"] = MetadataValue.float(round(data.takedown_success_rate, 4))
    if data.median_takedown_seconds is not None:
        metadata["median_takedown_hours"] = MetadataValue.float(round(data.median_takedown_seconds / 3600, 2))
    return metadata


def _target(context: AssetExecutionContext, key: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization, as a check evaluation's target.

    Dagster shows a partition's check status only while the evaluation targets the partition's latest
    materialization, so the target is looked up as ``AssetCheckResult`` itself does for one partition.
    """
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[key]), limit=1).records
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp) if records else None


def _delivery_check(context: AssetExecutionContext, key: str, outcome: DeliveryOutcome,
                    target: AssetCheckEvaluationTargetMaterializationData | None) -> AssetCheckEvaluation:
    """The partition's ``report_delivered`` evaluation, pointing at ``target`` (the materialization just recorded)."""
    severity = AssetCheckSeverity.WARN if outcome.status is DeliveryStatus.NO_RECIPIENTS else AssetCheckSeverity.ERROR
    return AssetCheckEvaluation(
        asset_key=context.asset_key, check_name=REPORT_DELIVERED, passed=outcome.ok, partition=key,
        target_materialization_data=target, severity=severity, description=outcome.description,
        metadata={"status": outcome.status.value, "owners_and_admins": MetadataValue.int(outcome.recipients),
                  "messages_sent": MetadataValue.int(outcome.sent), "method": outcome.method or "none"})


@asset(
    name=ASSET_NAME,
    partitions_def=executive_report_partitions,
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=REPORTS_PER_RUN),
    output_required=False,
    retry_policy=RETRY_POLICY,
    group_name="reports",
    kinds={"s3", "html"},
    check_specs=[AssetCheckSpec(
        REPORT_DELIVERED, asset=ASSET_NAME, partitions_def=executive_report_partitions,
        description="The week's report reached every owner and admin of the workspace by email "
                    "(passes without email when ECLIPSE_SMTP_URL is unset or the workspace is not active)."),
        *file_check_specs(ASSET_NAME, executive_report_partitions)],
    description="A workspace's executive report for one week (Monday 00:00 UTC to Monday), stored as HTML at "
                "workspaces/{workspaceId}/reports/{YYYY-MM-DD}-executive-report.html with its PDF beside it, and "
                "mailed once to its owners and admins (a backfill mails only with the run tag eclipse/email=true).",
)
def executive_report(
    context: AssetExecutionContext,
    source_db: SourceDatabaseResource,
    storage: ExportStorageResource,
    smtp: SmtpResource,
    limits: ExportLimitsResource,
) -> Iterator:
    engine, store = source_db.get_engine(), storage.get_storage()
    pdf = Settings.from_env().report_pdf
    policy = mail_policy(context.run.tags)
    context.log.info(f"mail policy: {policy} (run tag {EMAIL_TAG}=true mails a backfill or re-execution)")
    mail = MailSettings(smtp.get_target(), limits.get_report_retention_days(), smtp.max_attachment_bytes)
    if mail.smtp is None:
        context.log.info("ECLIPSE_SMTP_URL is unset: reports are written to S3 but not emailed")
    done = _materialized_before(context)
    keys = [key for key in context.partition_keys if key not in done]
    if len(keys) < len(context.partition_keys):
        context.log.info(f"{len(context.partition_keys) - len(keys)} partition(s) already materialized by this run "
                         f"or the run it resumes; {len(keys)} to go")
    generated_at = utc_now()

    written: list[tuple[str, str, ReportWeek, WrittenReport, FileVerification]] = []
    failures: list[str] = []
    try:
        for key in keys:
            dimensions = executive_report_partitions.get_partition_key_from_str(key).keys_by_dimension
            workspace_id, week = dimensions["workspace"], ReportWeek.from_key(dimensions["week"])
            try:
                report = publish_weekly_report(engine, store, workspace_id, week, generated_at, pdf=pdf)
                written.append((key, workspace_id, week, report, verify_export_file(store, report.expected_file())))
            except Exception as exc:  # noqa: BLE001 - one workspace's failure must not stop the others
                cause = redact(f"{type(exc).__name__}: {exc}", known_secrets())
                failures.append(f"{key}: {cause}")
                context.log.error(f"report {key} could not be written: {cause}")
    finally:
        release_pdf_printer()  # the run's browser (the PDFs share one): closed, or kept a while by a warm worker

    mailed_before = _mailed_partitions(context, [item[0] for item in written]) if policy == "once" else set()
    for key, workspace_id, week, report, verification in written:
        if not verification.passed:
            cause = f"the stored report failed verification: {verification.summary()}"
            failures.append(f"{key}: {cause}")
            context.log.error(f"report {key} not mailed: {cause}")
            metadata = _metadata(report, DeliveryOutcome(DeliveryStatus.FAILED), store.bucket, workspace_id, week)
            yield AssetMaterialization(asset_key=context.asset_key, partition=key,
                                       metadata={**metadata, "delivery": f"not mailed: {cause}"})
            yield from file_check_evaluations(context.asset_key, verification, key, _target(context, key))
            continue
        outcome = _mail(policy, key, mailed_before,
                        lambda r=report: deliver_weekly_report(engine, store, r, mail, utc_now()))
        log = context.log.info if outcome.ok else context.log.warning
        log(f"report {key}: {report.byte_size:,} bytes at {report.key}; {outcome.description}")
        yield AssetMaterialization(
            asset_key=context.asset_key, partition=key, metadata=_metadata(report, outcome, store.bucket,
                                                                           workspace_id, week),
            tags={k: v for k, v in executive_report_partitions.get_tags_for_partition_key(key).items()
                  if k.startswith("dagster/partition/")})
        target = _target(context, key)  # the materialization just recorded
        yield _delivery_check(context, key, outcome, target)
        yield from file_check_evaluations(context.asset_key, verification, key, target)

    # The check cannot be left out of a run of this asset (Dagster does not subset it); its evaluations went
    # out per partition above, and this marks its output as produced.
    for check_name in (REPORT_DELIVERED, *FILE_CHECK_NAMES):
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(
            AssetCheckKey(context.asset_key, check_name)))
    if failures:
        raise Failure(f"{len(failures)} of {len(keys)} report(s) failed: " + "; ".join(failures),
                      metadata={"failed_partitions": MetadataValue.json([f.split(": ", 1)[0] for f in failures])})
