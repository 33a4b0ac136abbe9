"""export_request_queue observed as the UI's "Observe" does (a run of the asset job), on a real Redis."""

import json

from dagster import AssetKey, DagsterInstance, Definitions

from eclipse_exports.assets import export_request_queue
from eclipse_exports.queue.keys import REQUEST_STREAM
from eclipse_exports.resources import RedisResource


def test_observe_records_the_figures_and_both_checks(redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("ECLIPSE_QUEUE_LAG_ALERT_SECONDS", "1")
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps({"id": "unread"})}, id="1000-0")  # 1970: very late
    defs = Definitions(assets=[export_request_queue], resources={"redis": RedisResource(url=redis_url)})
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[AssetKey("export_request_queue")])
    assert result.success
    [observation] = [e.event_specific_data.asset_observation for e in result.all_events
                     if e.event_type_value == "ASSET_OBSERVATION"]
    assert observation.metadata["lag_entries"].value == 1 and observation.metadata["stream_entries"].value == 1
    checks = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert not checks["queue_lag"].passed and checks["queue_lag"].severity.value == "ERROR"
    assert checks["failure_share"].passed
