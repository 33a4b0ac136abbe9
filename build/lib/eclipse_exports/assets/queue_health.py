"""``export_request_queue``: the request queue's health as an observable source asset with two checks.

The figures are :mod:`eclipse_exports.observability.health`'s, as numeric metadata the Dagster UI plots
over time (stream length, unread entries and the oldest one's age, runs queued and in progress, the last
hour's dead letters, completions and failures per resource, p50/p95 XADD → ``completed``). Two checks judge
them: ``queue_lag`` (the oldest unread request against ``ECLIPSE_QUEUE_LAG_ALERT_SECONDS``, default 300)
and ``failure_share`` (the last hour's failed share against ``ECLIPSE_QUEUE_FAILURE_ALERT_PERCENT``,
default 10): a warning past the limit, an error past twice it.

``export_request_queue_sensor`` observes it every minute without launching a run (the observation and
check evaluations are the sensor's asset events); "Observe" in the UI runs the same function below.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    DagsterInstance,
    DagsterRunStatus,
    MetadataValue,
    ObserveResult,
    RunsFilter,
    multi_observable_source_asset,
)

from eclipse_exports.config import Settings
from eclipse_exports.observability.health import (
    QueueHealth,
    Severity,
    Verdict,
    failure_verdict,
    lag_verdict,
    read_queue_health,
)
from eclipse_exports.observability.positions import RunQueueLimits, TagLimit
from eclipse_exports.resources import RedisResource

QUEUE_ASSET = AssetKey("export_request_queue")
LAG_CHECK, FAILURE_CHECK = "queue_lag", "failure_share"
QUEUE_CHECKS = [
    AssetCheckSpec(LAG_CHECK, asset=QUEUE_ASSET, description="The oldest request not yet read by "
                   "export_request_sensor is younger than ECLIPSE_QUEUE_LAG_ALERT_SECONDS (warning), or twice "
                   "that (error)."),
    AssetCheckSpec(FAILURE_CHECK, asset=QUEUE_ASSET, description="Failed jobs are at most "
                   "ECLIPSE_QUEUE_FAILURE_ALERT_PERCENT of those finished in the last hour (warning), or twice "
                   "that (error)."),
]
ACTIVE_STATUSES = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def run_queue_limits(instance: DagsterInstance) -> RunQueueLimits:
    """The instance's run queue limits (none without a ``QueuedRunCoordinator``)."""
    config = instance.get_concurrency_config().run_queue_config
    if config is None:
        return RunQueueLimits()
    return RunQueueLimits(config.max_concurrent_runs,
                          tuple(TagLimit.from_config(limit) for limit in config.tag_concurrency_limits or ()))


def run_counts(instance: DagsterInstance) -> tuple[int, int]:
    """Runs queued and in progress (starting, started, canceling) on the instance."""
    return (instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.QUEUED])),
            instance.get_runs_count(RunsFilter(statuses=ACTIVE_STATUSES)))


_SEVERITY = {Severity.WARN: AssetCheckSeverity.WARN, Severity.ERROR: AssetCheckSeverity.ERROR}


def queue_metadata(health: QueueHealth) -> dict[str, MetadataValue]:
    """The figures as int/float metadata (what the UI's plots chart)."""
    return {name: MetadataValue.float(float(value)) if isinstance(value, float) else MetadataValue.int(value)
            for name, value in health.metadata().items()}


def queue_verdicts(health: QueueHealth, settings: Settings) -> dict[str, Verdict]:
    """Each check's verdict under the deployment's limits."""
    return {LAG_CHECK: lag_verdict(health, settings.queue_lag_alert_seconds),
            FAILURE_CHECK: failure_verdict(health, settings.queue_failure_alert_percent)}


def _check_fields(verdict: Verdict) -> dict:
    return {"passed": verdict.passed, "severity": _SEVERITY.get(verdict.severity, AssetCheckSeverity.WARN),
            "description": verdict.description,
            "metadata": {"value": MetadataValue.float(float(verdict.value)),
                         "limit": MetadataValue.float(float(verdict.limit)), "verdict": verdict.severity.value}}


def queue_events(health: QueueHealth, settings: Settings) -> list[AssetObservation | AssetCheckEvaluation]:
    """The observation and the two check evaluations, as a sensor reports them."""
    return [AssetObservation(asset_key=QUEUE_ASSET, metadata=queue_metadata(health)),
            *[AssetCheckEvaluation(asset_key=QUEUE_ASSET, check_name=name, **_check_fields(verdict))
              for name, verdict in queue_verdicts(health, settings).items()]]


@multi_observable_source_asset(
    name="export_request_queue",
    specs=[AssetSpec(QUEUE_ASSET, group_name="queue", kinds={"redis"}, description=(
        "The export request stream in Redis and the Dagster run queue behind it: how much waits, for how long, "
        "and how the last hour went. Observed every minute by export_request_queue_sensor."))],
    check_specs=QUEUE_CHECKS,
)
def export_request_queue(context: AssetExecutionContext, redis: RedisResource) -> Iterator[ObserveResult]:
    health = read_queue_health(redis.get_client(), runs=run_counts(context.instance))
    yield ObserveResult(asset_key=QUEUE_ASSET, metadata=queue_metadata(health), check_results=[
        AssetCheckResult(asset_key=QUEUE_ASSET, check_name=name, **_check_fields(verdict))
        for name, verdict in queue_verdicts(health, Settings.from_env()).items()])
