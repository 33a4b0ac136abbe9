"""export_request_sensor on a real Redis and source database, evaluated with build_sensor_context."""

import json
import os
import threading
import time

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, REQUEST_STREAM, job_status_key
from eclipse_exports.resources import RedisResource, SourceDatabaseResource
from eclipse_exports.sensors import export_request_sensor


def payload(job_id, workspace="ws_a", user="u_analyst", resource="alerts", fmt="csv", **extra) -> str:
    return json.dumps({"id": job_id, "workspaceId": workspace, "userId": user, "resourceType": resource,
                       "format": fmt, **extra})


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def tick(instance, redis_url, sqlite_engine, redis_client):
    resources = {"redis": RedisResource(url=redis_url), "source_db": SourceDatabaseResource(url=str(sqlite_engine.url))}

    def _tick(cursor=None):
        context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return export_request_sensor(context)

    return _tick


def status(redis_client, job_id) -> dict:
    return {k.decode(): v.decode() for k, v in redis_client.hgetall(job_status_key(job_id)).items()}


def dead_letters(redis_client) -> list[dict]:
    return [{k.decode(): v for k, v in fields.items()} for _id, fields in redis_client.xrange(DEAD_LETTER_STREAM)]


def test_valid_requests_become_partitioned_runs_and_the_cursor_advances(tick, redis_client):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("j1", filters={"severity": ["high"]})})
    last = redis_client.xadd(REQUEST_STREAM, {"payload": payload("j2", workspace="ws_b", user="u_b",
                                                                 resource="infringements", fmt="parquet")})
    result = tick()
    assert [r.run_key for r in result.run_requests] == ["j1", "j2"]
    first = result.run_requests[0]
    assert first.partition_key == "ws_a" and first.job_name == "alerts_export_job"
    assert first.tags == {"eclipse/job_id": "j1", "eclipse/workspace_id": "ws_a", "eclipse/user_id": "u_analyst",
                          "eclipse/resource_type": "alerts", "eclipse/format": "csv", "eclipse/scope": "filtered"}
    # j1 is filtered: its run materializes nothing, so it plans no checks; j2 exports everything, checks included.
    assert first.asset_selection == [AssetKey("alerts_export")] and first.asset_check_keys == []
    assert result.run_requests[1].asset_selection is None and result.run_requests[1].asset_check_keys is None
    config = first.run_config["ops"]["alerts_export"]["config"]
    assert config["job_id"] == "j1" and config["filters"]["severity"] == ["high"]
    assert result.cursor == last.decode()
    added = result.dynamic_partitions_requests[0]
    assert added.partitions_def_name == "workspaces" and sorted(added.partition_keys) == ["ws_a", "ws_b"]
    assert status(redis_client, "j1")["status"] == "queued"
    assert status(redis_client, "j2")["resourceType"] == "infringements"

    again = tick(result.cursor)
    assert again.run_requests == [] and again.cursor == result.cursor


def test_invalid_entries_are_rejected_dead_lettered_and_do_not_stop_the_sensor(tick, redis_client):
    bad = [
        {"payload": b"\xff\xfe\x00garbage"},
        {"payload": "this is not json"},
        {"payload": "[1, 2, 3]"},
        {"payload": "[" * 5000 + "]" * 5000},
        {"payload": json.dumps({"id": "big", "x": "a" * 100_000})},
        {"other": "no payload field"},
        {"payload": payload("bad-format", fmt="xlsx")},
        {"payload": payload("bad-extra", email="attacker@evil.example")},
    ]
    for fields in bad:
        redis_client.xadd(REQUEST_STREAM, fields)
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("good")})
    result = tick()
    assert [r.run_key for r in result.run_requests] == ["good"]
    letters = dead_letters(redis_client)
    assert len(letters) == len(bad)
    assert all(entry["errorCode"] == b"invalid_request" for entry in letters)
    reasons = [e["reason"].decode() for e in letters]
    assert "payload is not UTF-8" in reasons[0]
    assert "Invalid JSON" in reasons[1]
    assert "Input should be an object" in reasons[2]
    assert "recursion limit" in reasons[3]
    assert "the limit is 65536" in reasons[4]
    assert reasons[5] == "entry has no 'payload' field"
    assert letters[0]["payload"] == b"\xff\xfe\x00garbage"
    for job_id, fragment in [("bad-format", "format: Input should be"), ("bad-extra", "email: unknown field")]:
        s = status(redis_client, job_id)
        assert s["status"] == "rejected" and s["errorCode"] == "invalid_request" and fragment in s["error"]
    assert status(redis_client, "good")["status"] == "queued"


@pytest.mark.parametrize("workspace, user, resource, code", [
    ("ws_nowhere", "u_analyst", "alerts", "unknown_workspace"),
    ("ws_arch", "u_arch", "alerts", "workspace_inactive"),
    ("ws_del", "u_del", "alerts", "workspace_inactive"),
    ("ws_a", "u_none", "alerts", "forbidden"),
    ("ws_a", "u_b", "alerts", "forbidden"),
    ("ws_a", "u_viewer", "infringements", "forbidden"),
    ("ws_a", "u_viewer", "actions", "forbidden"),
])
def test_refusals_get_a_status_but_no_run_and_no_dead_letter(tick, redis_client, workspace, user, resource, code):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("refused", workspace=workspace, user=user,
                                                          resource=resource)})
    result = tick()
    assert result.run_requests == []
    s = status(redis_client, "refused")
    assert (s["status"], s["errorCode"]) == ("rejected", code) and s["error"]
    assert dead_letters(redis_client) == []


@pytest.mark.parametrize("user, resource", [("u_owner", "actions"), ("u_admin", "infringements"),
                                            ("u_analyst", "actions"), ("u_viewer", "alerts")])
def test_allowed_roles(tick, redis_client, user, resource):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("ok", user=user, resource=resource)})
    assert [r.run_key for r in tick().run_requests] == ["ok"]


def test_duplicate_id_is_dead_lettered_and_never_touches_the_first_job(tick, redis_client):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("dup")})
    first = tick()
    assert [r.run_key for r in first.run_requests] == ["dup"]
    before = status(redis_client, "dup")
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("dup", resource="actions", fmt="json")})
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("dup", fmt="nonsense")})
    second = tick(first.cursor)
    assert second.run_requests == []
    assert status(redis_client, "dup") == before
    letters = dead_letters(redis_client)
    assert [e["errorCode"] for e in letters] == [b"duplicate", b"duplicate"]
    assert b"duplicate request id 'dup'" in letters[0]["reason"]


def test_reading_the_same_entry_again_after_a_restart_is_not_a_duplicate(tick, redis_client):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("again")})
    first = tick()
    replay = tick("0-0")  # the tick's result was lost: the stream is read again from the start
    assert [r.run_key for r in replay.run_requests] == ["again"]  # same run key: Dagster launches it once
    assert dead_letters(redis_client) == []
    assert replay.cursor == first.cursor
    redis_client.hset(job_status_key("again"), "status", "completed")
    assert tick("0-0").run_requests == []


def test_a_fresh_deployment_continues_where_the_last_one_stopped(tick, redis_client):
    redis_client.xadd(REQUEST_STREAM, {"payload": "not json"})
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("old")})
    first = tick()
    assert [r.run_key for r in first.run_requests] == ["old"] and len(dead_letters(redis_client)) == 1
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("new")})
    fresh = tick(None)  # a new Dagster instance: no cursor of its own
    assert [r.run_key for r in fresh.run_requests] == ["new"]
    assert len(dead_letters(redis_client)) == 1  # the old invalid entry is not dead-lettered again


def test_entry_with_fields_besides_payload_is_invalid(tick, redis_client):
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("extra-1"), "email": "attacker@evil.example"})
    assert tick().run_requests == []
    [letter] = dead_letters(redis_client)
    assert b"fields besides 'payload': email" in letter["reason"]
    assert status(redis_client, "extra-1")["status"] == "rejected"


def test_producer_never_overwrites_an_existing_job(redis_client):
    from eclipse_exports.models import ExportRequest
    from eclipse_exports.queue.producer import enqueue_request

    redis_client.hset(job_status_key("taken"), mapping={"status": "completed", "workspaceId": "ws_b"})
    enqueue_request(redis_client, ExportRequest.from_payload(payload("taken", workspace="ws_a")))
    assert status(redis_client, "taken") == {"status": "completed", "workspaceId": "ws_b"}


def test_long_poll_sees_a_request_sent_during_the_tick(tick, redis_client, monkeypatch):
    monkeypatch.setitem(os.environ, "ECLIPSE_SENSOR_LONG_POLL_MS", "3000")
    timer = threading.Timer(0.5, lambda: redis_client.xadd(REQUEST_STREAM, {"payload": payload("late")}))
    started = time.monotonic()
    timer.start()
    result = tick()
    assert [r.run_key for r in result.run_requests] == ["late"]
    assert time.monotonic() - started < 2.5


def test_producer_enqueues_single_and_bulk_requests_with_pending_status(tick, redis_client):
    from eclipse_exports.models import ExportRequest
    from eclipse_exports.queue.producer import enqueue_request, enqueue_requests

    one = ExportRequest.from_payload(payload("prod-1"))
    many = [ExportRequest.from_payload(payload(f"prod-bulk-{n}", fmt="jsonl")) for n in range(5)]
    first_id = enqueue_request(redis_client, one)
    bulk_ids = enqueue_requests(redis_client, many)
    entries = redis_client.xrange(REQUEST_STREAM)
    assert [e[0].decode() for e in entries] == [first_id, *bulk_ids]
    assert ExportRequest.from_payload(entries[1][1][b"payload"]) == many[0]
    assert status(redis_client, "prod-bulk-4")["status"] == "pending"
    assert [r.run_key for r in tick().run_requests] == ["prod-1", *(r.id for r in many)]
    assert status(redis_client, "prod-bulk-4")["status"] == "queued"


def test_a_tick_that_only_refuses_names_every_refusal(tick, instance, redis_client, capfd):
    instance.add_dynamic_partitions("workspaces", ["ws_a"])
    redis_client.xadd(REQUEST_STREAM, {"payload": "not json"})
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("ref-forbidden", user="u_viewer", resource="actions")})
    redis_client.xadd(REQUEST_STREAM, {"payload": payload("ref-unknown", workspace="ws_nowhere")})
    result = tick()
    assert result.run_requests == [] and result.skip_reason is not None
    reason = result.skip_reason.skip_message
    assert reason.startswith("3 request(s) refused, none launched: entry ")
    assert "ref-forbidden: forbidden" in reason and "ref-unknown: unknown_workspace" in reason
    assert ": invalid_request" in reason
    logged = capfd.readouterr().err  # the tick's log (Dagster's logger writes to stderr)
    assert "job ref-forbidden: forbidden (" in logged and "job (no valid id): invalid_request (" in logged
    assert "[dead-lettered]" in logged
    # The refusal for a known workspace shows among that partition's events; ws_nowhere is no partition.
    [observation] = result.asset_events
    assert observation.asset_key.path == ["actions_export"] and observation.partition == "ws_a"
    refused = observation.metadata["refused_request"].value
    assert refused["error_code"] == "forbidden" and refused["job_id"] == "ref-forbidden"
    assert set(observation.metadata) == {"refused_request"}


def test_dead_letters_keep_every_original_field_and_the_source_entry_id(tick, redis_client):
    no_payload = redis_client.xadd(REQUEST_STREAM, {"body": b"{\"id\": \"x\"}", "reason": b"mine", "\xff": b"\x00"})
    extra = redis_client.xadd(REQUEST_STREAM, {"payload": payload("j-extra"), "traceId": "t-1"})
    tick()
    letters = {v[b"sourceEntryId"]: v for _id, v in redis_client.xrange(DEAD_LETTER_STREAM)}
    first = letters[no_payload]
    assert first[b"body"] == b"{\"id\": \"x\"}" and first[b"original:reason"] == b"mine"
    assert first["\xff".encode()] == b"\x00" and first[b"errorCode"] == b"invalid_request"
    assert first[b"reason"] == b"entry has no 'payload' field"
    second = letters[extra]
    assert second[b"payload"] == payload("j-extra").encode() and second[b"traceId"] == b"t-1"
    assert b"besides 'payload'" in second[b"reason"]


def test_two_instances_reading_one_stream_launch_each_request_once(redis_url, sqlite_engine, redis_client):
    """Two Dagster instances (their own storage, their own cursor) tick over the same entries, interleaved and
    at once: every request is launched by exactly one, and each instance's own re-reads stay with it."""
    resources = {"redis": RedisResource(url=redis_url), "source_db": SourceDatabaseResource(url=str(sqlite_engine.url))}
    for n in range(40):
        redis_client.xadd(REQUEST_STREAM, {"payload": payload(f"j{n}")})
    with DagsterInstance.ephemeral() as blue, DagsterInstance.ephemeral() as green:
        launched: dict[str, list[str]] = {"blue": [], "green": []}

        def drain(name, instance):
            cursor = None
            for _ in range(40):
                result = export_request_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                                    resources=resources))
                launched[name] += [r.run_key for r in result.run_requests or []]
                cursor = result.cursor or cursor

        threads = [threading.Thread(target=drain, args=pair) for pair in (("blue", blue), ("green", green))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(launched["blue"] + launched["green"]) == sorted(f"j{n}" for n in range(40))
        # An instance whose tick died re-reads its own entries from its old cursor and launches them again
        # (its run keys deduplicate); the other instance's claims stay the other's.
        owner = "blue" if launched["blue"] else "green"
        replay = export_request_sensor(build_sensor_context(instance=blue if owner == "blue" else green,
                                                            cursor="0-0", resources=resources))
        assert sorted(r.run_key for r in replay.run_requests) == sorted(launched[owner])


def test_a_tick_while_redis_is_down_skips_with_the_reason_and_keeps_the_cursor(instance, sqlite_engine):
    from eclipse_exports.local.services import free_port

    resources = {"redis": RedisResource(url=f"redis://127.0.0.1:{free_port()}/0"),
                 "source_db": SourceDatabaseResource(url=str(sqlite_engine.url))}
    started = time.monotonic()
    result = export_request_sensor(build_sensor_context(instance=instance, cursor="5-0", resources=resources))
    assert result.run_requests == [] and result.cursor is None
    message = result.skip_reason.skip_message
    assert message.startswith("Redis is unreachable (ConnectionError") and "read again after entry 5-0" in message
    assert time.monotonic() - started < 45  # the retries are bounded


def test_valid_requests_wait_while_the_source_database_is_down_and_go_on_after(tmp_path, instance, redis_url,
                                                                                 redis_client):
    """A database blip while the sensor reads requests: nothing is rejected or dead-lettered, nothing is
    skipped; the tick stops at the first entry it cannot check and the next tick after the restart takes all."""
    import subprocess

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from eclipse_exports.local.services import _as_postgres_user, _pg_bin, start_postgres
    from eclipse_exports.source.demo_data import create_schema
    from tests.dataset import insert_dataset

    service = start_postgres(tmp_path / "pg")
    port = make_url(service.url).port
    try:
        engine = create_engine(service.url)
        create_schema(engine)
        insert_dataset(engine)
        engine.dispose()
        resources = {"redis": RedisResource(url=redis_url), "source_db": SourceDatabaseResource(url=service.url)}

        def tick(cursor):
            return export_request_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))

        warm = tick(None)  # the resource's engine has connected once
        jobs = [f"blip-{n}" for n in range(3)]
        for job_id in jobs:
            redis_client.xadd(REQUEST_STREAM, {"payload": payload(job_id)})
        service.stop()
        down = tick(warm.cursor)
        assert not down.run_requests
        assert redis_client.xlen(DEAD_LETTER_STREAM) == 0
        assert all(status(redis_client, job_id).get("status") in (None, "pending") for job_id in jobs), \
            [status(redis_client, j) for j in jobs]
        options = f"-p {port} -k {tmp_path / 'pg' / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(tmp_path / "pg" / "data"), "-o", options,
                                          "-l", str(tmp_path / "pg" / "postgres.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        cursor = down.cursor or warm.cursor
        launched = []
        for _ in range(3):
            result = tick(cursor)
            launched += [r.run_key for r in result.run_requests]
            cursor = result.cursor or cursor
            if len(launched) == len(jobs):
                break
        assert sorted(launched) == jobs
        assert {status(redis_client, job_id)["status"] for job_id in jobs} == {"queued"}
        assert redis_client.xlen(DEAD_LETTER_STREAM) == 0
    finally:
        service.stop()
