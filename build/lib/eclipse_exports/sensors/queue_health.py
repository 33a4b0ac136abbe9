"""``export_request_queue_sensor``: observes ``export_request_queue`` every minute and evaluates its checks.

No run is launched: the observation (the queue's figures as numeric metadata) and the two check
evaluations are the tick's asset events, so watching the queue costs a few Redis commands and two run
counts a minute (``bench/observation_cost.py`` measures it). A Redis outage skips the tick with the cause.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, sensor
from redis.exceptions import RedisError

from eclipse_exports.assets.queue_health import queue_events, run_counts
from eclipse_exports.config import Settings, known_secrets, redact
from eclipse_exports.observability.health import read_queue_health
from eclipse_exports.resources import RedisResource

OBSERVE_EVERY_SECONDS = 60


@sensor(
    name="export_request_queue_sensor",
    minimum_interval_seconds=OBSERVE_EVERY_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Observes export_request_queue (the request stream's health) every minute and evaluates its "
                "checks queue_lag and failure_share.",
)
def export_request_queue_sensor(context: SensorEvaluationContext, redis: RedisResource) -> SensorResult:
    try:
        health = read_queue_health(redis.get_client(), runs=run_counts(context.instance))
    except RedisError as exc:
        return SensorResult(skip_reason=f"Redis is unreachable ({type(exc).__name__}: "
                                        f"{redact(str(exc), known_secrets())}); the queue was not observed")
    return SensorResult(asset_events=queue_events(health, Settings.from_env()))
