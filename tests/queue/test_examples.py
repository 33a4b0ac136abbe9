"""Every example request in examples/ goes through the real intake (Redis stream, demo database) and
comes out as its folder says: accepted, or refused with that errorCode."""

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from eclipse_exports.queue.intake import take_requests
from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, REQUEST_STREAM
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.source.demo_data import load_demo_data

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACCEPTED = sorted((EXAMPLES / "requests").glob("*.json"))
REFUSED = sorted(p for p in (EXAMPLES / "rejected").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory):
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}")
    load_demo_data(engine, "tiny", seed=3)
    return engine


def send(redis_client, demo_engine, *paths: Path):
    for path in paths:
        redis_client.xadd(REQUEST_STREAM, {"payload": path.read_bytes()})
    return take_requests(redis_client, demo_engine, JobStatusStore(redis_client), None)


def test_there_is_an_example_for_every_resource_format_and_refusal():
    names = {p.stem for p in ACCEPTED}
    for resource, formats in {"alerts": "csv json jsonl parquet", "infringements": "csv json jsonl parquet",
                              "actions": "csv json jsonl parquet", "audit_logs": "csv json jsonl parquet",
                              "export_audit": "csv json jsonl parquet", "report": "html"}.items():
        for fmt in formats.split():
            assert {f"{resource}-{fmt}", f"{resource}-{fmt}-filtered"} <= names
    assert {p.parent.name for p in REFUSED} == {"invalid_request", "unknown_workspace", "workspace_inactive",
                                                "forbidden", "duplicate"}


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda p: p.stem)
def test_accepted_examples_are_queued(redis_client, demo_engine, path):
    result = send(redis_client, demo_engine, path)
    job_id = json.loads(path.read_text())["id"]
    assert [r.id for r in result.accepted] == [job_id], result.refusals
    assert JobStatusStore(redis_client).get(job_id)["status"] == "queued"
    assert bool(json.loads(path.read_text()).get("filters")) == path.stem.endswith("-filtered")


@pytest.mark.parametrize("path", REFUSED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_refused_examples_come_out_with_their_code(redis_client, demo_engine, path):
    code = path.parent.name
    if code == "duplicate":
        result = send(redis_client, demo_engine, path, path)
        assert len(result.accepted) == 1 and [r.code for r in result.refusals] == ["duplicate"]
        assert JobStatusStore(redis_client).get(result.accepted[0].id)["status"] == "queued"
        assert redis_client.xlen(DEAD_LETTER_STREAM) == 1
        return
    result = send(redis_client, demo_engine, path)
    assert result.accepted == [] and [r.code for r in result.refusals] == [code]
    dead_letters = redis_client.xrange(DEAD_LETTER_STREAM)
    if code == "invalid_request":
        assert len(dead_letters) == 1 and dead_letters[0][1][b"payload"] == path.read_bytes()
    else:
        assert dead_letters == []
        job_id = json.loads(path.read_text())["id"]
        status = JobStatusStore(redis_client).get(job_id)
        assert (status["status"], status["errorCode"]) == ("rejected", code)
