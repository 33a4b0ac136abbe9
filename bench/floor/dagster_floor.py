"""Dagster's floor: a code location holding one trivial asset, launched the way the product launches runs.

``bench/run_cost.py`` runs the same burst against this location and against
Eclipse Exports on the same instance settings; the difference between the two
is the product's own cost per run. The sensor mirrors ``export_request_sensor``'s
shape (a long poll of a Redis stream, one ``RunRequest`` per entry, run key =
entry id) so both launch runs alike; the asset does nothing.
"""

import os

from dagster import (
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

STREAM = os.environ.get("DAGSTER_FLOOR_STREAM", "bench:floor:requests")


@asset
def trivial() -> MaterializeResult:
    """Nothing at all: what a run costs when the asset costs nothing."""
    return MaterializeResult()


trivial_job = define_asset_job("trivial_job", selection=[trivial], executor_def=in_process_executor)


@sensor(job=trivial_job, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def floor_request_sensor(context: SensorEvaluationContext) -> SensorResult:
    # Only the sensor needs Redis: imported here so the run worker's import stays Dagster's alone.
    import redis

    client = redis.Redis.from_url(os.environ["ECLIPSE_REDIS_URL"])
    cursor = context.cursor or "0-0"
    response = client.xread({STREAM: cursor}, count=200, block=3500)
    entries = response[0][1] if response else []
    run_requests = []
    for entry_id, fields in entries:
        request_id = fields[b"id"].decode()
        run_requests.append(RunRequest(run_key=request_id, tags={"bench/request_id": request_id}))
        cursor = entry_id.decode()
    return SensorResult(run_requests=run_requests, cursor=cursor)


defs = Definitions(assets=[trivial], jobs=[trivial_job], sensors=[floor_request_sensor], executor=in_process_executor)
