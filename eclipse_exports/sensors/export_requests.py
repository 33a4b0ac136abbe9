"""``export_request_sensor``: turns new entries of the request stream into export runs.

The cursor is the last stream entry id handled. Each tick hands the entries
after it to :func:`eclipse_exports.queue.intake.take_requests` (validation, access,
dead-lettering, statuses) and returns one ``RunRequest`` per accepted request:
run key = request id, partition = workspace id, run config = the request,
the interface's tags. New workspaces are added to the ``workspaces`` partitions in
the same result.

Refused entries are named in the tick's log (entry id, request id, code,
reason) and, when the request was for a known workspace, recorded as an
observation of that workspace's partition of the asset it asked for; a tick
that only refused entries says so as its skip reason rather than "empty
result".

A tick long-polls the stream (``ECLIPSE_SENSOR_LONG_POLL_MS``, default 3500 ms,
short enough to end before the next 5 s evaluation) so a request XADDed between ticks is seen at once rather than at the
next 5-second evaluation. A tick reads 200 entries at a time and goes on reading while reads come back full,
so a flood of refused entries is worked through at the intake's own speed rather than 200 per tick; it stops at
5,000 entries, 200 accepted requests (the runs the daemon creates after the tick) or 15 s, far inside Dagster's
60 s sensor timeout.
"""

import uuid
from datetime import datetime

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from redis.exceptions import RedisError

from eclipse_exports.assets.exports import ExportConfig, run_tags
from eclipse_exports.config import Settings, known_secrets, redact
from eclipse_exports.exports import summary as export_summary
from eclipse_exports.jobs import EXPORT_JOBS, export_job_name
from eclipse_exports.models import ExportRequest
from eclipse_exports.partitions import workspace_partitions
from eclipse_exports.queue.intake import Refusal, take_requests
from eclipse_exports.resources import RedisResource, SourceDatabaseResource

MAX_ENTRIES_PER_TICK = 200  # per read; a tick reads on while reads come back full
MAX_ENTRIES_PER_TICK_TOTAL = 5000
MAX_RUNS_PER_TICK = 200  # each RunRequest becomes a run the daemon creates after the tick
TICK_TIME_BUDGET_SECONDS = 15.0
REFUSALS_IN_SKIP_REASON = 10
INTAKE_OWNER_KEY = "eclipse/intake_owner"
_owners: dict[str, str] = {}


def long_poll_ms() -> int:
    """How long a tick waits for the first new entry, in milliseconds (0 = no wait)."""
    return Settings.from_env().sensor_long_poll_ms


def intake_owner(instance: DagsterInstance) -> str:
    """This Dagster instance's id as a reader of the request stream (``dagster-`` + 12 hex digits).

    Made once and kept in the instance's own storage (its daemon cursor table: SQLite under
    ``DAGSTER_HOME`` or PostgreSQL), so it survives restarts and is shared by every process of one
    instance, while a second instance (another ``DAGSTER_HOME``, another storage) gets its own. Only this
    sensor writes it and Dagster never runs two of its ticks at once, so the first write cannot race.
    """
    root = instance.root_directory
    if root not in _owners:
        cursors = instance.daemon_cursor_storage
        if INTAKE_OWNER_KEY not in cursors.get_cursor_values({INTAKE_OWNER_KEY}):
            cursors.set_cursor_values({INTAKE_OWNER_KEY: f"dagster-{uuid.uuid4().hex[:12]}"})
        _owners[root] = cursors.get_cursor_values({INTAKE_OWNER_KEY})[INTAKE_OWNER_KEY]
    return _owners[root]


def run_request_for(request: ExportRequest, picked_up_at: datetime | None = None) -> RunRequest:
    """The run of one accepted request.

    ``picked_up_at`` goes into the run config so that every run of the request (re-execution, retry)
    writes the same file key. A filtered export's run leaves the asset checks out: it records an
    observation, not a materialization, and checks planned in a run that yields none show in the UI as
    the partition's latest check result, "Skipped", hiding the last full export's real one.
    """
    asset_name = f"{request.resource_type.value}_export"
    filtered = export_summary.scope(request) == export_summary.FILTERED
    return RunRequest(
        run_key=request.id,
        job_name=export_job_name(request.resource_type),
        partition_key=request.workspace_id,
        run_config={"ops": {asset_name: {"config": ExportConfig.from_request(request, picked_up_at).model_dump()}}},
        tags=run_tags(request),
        asset_selection=[AssetKey(asset_name)] if filtered else None,
        asset_check_keys=[] if filtered else None,
    )


@sensor(
    name="export_request_sensor",
    jobs=list(EXPORT_JOBS.values()),
    # The daemon evaluates sensors about every 5 s whatever this says; at 5 a tick landing a hair early
    # is skipped and the gap doubles to 10 s, so ask for less.
    minimum_interval_seconds=1,
    default_status=DefaultSensorStatus.RUNNING,
    description="Reads export requests from the Redis stream and launches one run per valid request.",
)
def export_request_sensor(
    context: SensorEvaluationContext, redis: RedisResource, source_db: SourceDatabaseResource
) -> SensorResult:
    status = redis.get_status_store()
    try:
        outcome = take_requests(
            redis.get_client(),
            source_db.get_engine(),
            status,
            context.cursor,
            max_entries=MAX_ENTRIES_PER_TICK,
            block_ms=long_poll_ms(),
            time_budget_seconds=TICK_TIME_BUDGET_SECONDS,
            owner=lambda: intake_owner(context.instance),
            max_total_entries=MAX_ENTRIES_PER_TICK_TOTAL,
            max_accepted=MAX_RUNS_PER_TICK,
        )
    except RedisError as exc:
        # Nothing is lost: the cursor stays, so the next tick reads the same entries again.
        message = (f"Redis is unreachable ({type(exc).__name__}: {redact(str(exc), known_secrets())}); no request "
                   f"was taken, and the stream is read again after entry {context.cursor or 'the start'} "
                   "once it is back")
        context.log.warning(message)
        return SensorResult(skip_reason=message)
    run_requests = [run_request_for(request, outcome.picked_up_at) for request in outcome.accepted]
    refused_requests = [r for r in outcome.refusals if r.request is not None]
    new_workspaces: list[str] = []
    known: set[str] = set()
    if run_requests or refused_requests:
        # Only then: context.instance opens a new instance (storage connections) on every tick that touches it.
        known = set(context.instance.get_dynamic_partitions(workspace_partitions.name))
        new_workspaces = sorted({r.partition_key for r in run_requests} - known)
    if outcome.entries:
        context.log.info(
            f"{outcome.entries} entries: {len(run_requests)} runs requested, {outcome.rejected} rejected, "
            f"{outcome.dead_lettered} dead-lettered, {outcome.skipped} already handled, "
            f"{outcome.taken_elsewhere} claimed by another Dagster instance"
        )
    for refusal in outcome.refusals:
        context.log.warning(f"refused {refusal.describe()}")
    return SensorResult(
        run_requests=run_requests,
        cursor=outcome.cursor,
        dynamic_partitions_requests=[workspace_partitions.build_add_request(new_workspaces)] if new_workspaces else [],
        asset_events=[refusal_observation(r) for r in refused_requests if r.request.workspace_id in known],
        skip_reason=refusals_only(outcome.refusals) if outcome.refusals and not run_requests else None,
    )


def refusal_observation(refusal: Refusal) -> AssetObservation:
    """A refused request, shown among the events of the partition it asked for."""
    request = refusal.request
    assert request is not None
    return AssetObservation(
        asset_key=f"{request.resource_type.value}_export",
        partition=request.workspace_id,
        description=f"Request {request.id} refused: {refusal.code}",
        # One key of its own, so the partition's materialization metadata shown beside it stays its own.
        metadata={"refused_request": {"job_id": request.id, "requested_by": request.user_id,
                                      "error_code": refusal.code, "reason": refusal.reason,
                                      "stream_entry": refusal.entry_id}},
    )


def refusals_only(refusals: list[Refusal]) -> str:
    """The skip reason of a tick that refused every entry it read, naming them."""
    named = "; ".join(f"{r.job_id or 'entry ' + r.entry_id}: {r.code}" for r in refusals[:REFUSALS_IN_SKIP_REASON])
    more = f"; and {len(refusals) - REFUSALS_IN_SKIP_REASON} more" if len(refusals) > REFUSALS_IN_SKIP_REASON else ""
    return f"{len(refusals)} request(s) refused, none launched: {named}{more} (details in this tick's log)"
