"""Daily audit archives on real Redis and S3 (moto): chained, signed, partial then complete, trimmed once
archived, read back without duplicates, and every kind of tampering named by day."""

import gzip
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eclipse_exports.audit.archive import ArchiveRefused, AuditArchiver, list_archives
from eclipse_exports.audit.reader import read_trail
from eclipse_exports.audit.trail import AuditTrail, millis
from eclipse_exports.audit.verify import verify_archives
from eclipse_exports.queue.keys import audit_stream_key
from eclipse_exports.retention.purge import purge_workspace

WS = "ws_acme"
D1, D2, D3, D4 = (date(2026, 11, d) for d in (2, 3, 4, 5))
NOW = datetime(2026, 11, 5, 15, 0, tzinfo=UTC)  # D4 is today
KEY = Ed25519PrivateKey.generate()


def add(redis_client, moment: datetime, event: str, job: str, seq: int = 0, event_id: str | None = None) -> str:
    event_id = event_id or f"e-{job}-{event}-{millis(moment)}"
    redis_client.xadd(audit_stream_key(WS), {"eventId": event_id, "jobId": job, "actor": "system:run",
                                            "event": event, "details": json.dumps({"n": seq})},
                      id=f"{millis(moment)}-{seq}")
    return event_id


@pytest.fixture
def history(redis_client):
    """Events on D1, D2 and D4 (today); none on D3. Returns their event ids in order."""
    ids = []
    for day, hours in ((D1, (1, 9)), (D2, (0, 12, 23)), (D4, (2, 10))):
        for n, hour in enumerate(hours):
            ids.append(add(redis_client, datetime(day.year, day.month, day.day, hour, tzinfo=UTC), "completed",
                           f"job-{day.day}-{n}"))
    return ids


def archiver(storage, redis_client, retention_days: int = 400) -> AuditArchiver:
    return AuditArchiver(storage, AuditTrail(redis_client), KEY, retention_days)


def verify(storage, redis_client, key=KEY, since=None, today=D4):
    return verify_archives(storage, AuditTrail(redis_client), WS, key.public_key(), today, since)


def test_days_are_archived_in_order_chained_and_the_stream_trimmed_once_archived(storage, redis_client, history):
    first = archiver(storage, redis_client).archive(WS, D2, now=NOW)
    assert first.written == {D1: "complete", D2: "complete"} and first.entries == 3 and first.trimmed == 5
    assert redis_client.xlen(audit_stream_key(WS)) == 2  # only today's entries are left
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D2))
    assert head["ServerSideEncryption"] == "AES256"
    today = archiver(storage, redis_client).archive(WS, D4, now=NOW)
    assert today.written == {D3: "complete", D4: "partial"} and today.partial and today.entries == 2
    assert redis_client.xlen(audit_stream_key(WS)) == 2  # a partial day trims nothing
    assert [a.day for a in list_archives(storage, WS)] == [D1, D2, D3, D4]
    lines = gzip.decompress(storage.client.get_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D2))
                            ["Body"].read()).splitlines()
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["previousDay"] == "2026-11-02" and len(header["previousSha256"]) == 64 and not header["partial"]
    assert trailer["entries"] == 3 and trailer["signature"]
    d1_header = json.loads(gzip.decompress(storage.client.get_object(
        Bucket=storage.bucket, Key=storage.audit_key(WS, D1))["Body"].read()).splitlines()[0])
    assert d1_header["previousDay"] is None and d1_header["previousSha256"] is None
    report = verify(storage, redis_client)
    assert report.ok and report.days_checked == 4 and report.entries == 7 and report.partial_days == [D4]
    # Everything reads back once, in order: archives for the complete days, the stream for today.
    assert [e.event_id for e in read_trail(storage, AuditTrail(redis_client), WS)] == history
    assert [e.job_id for e in read_trail(storage, AuditTrail(redis_client), WS, job_id="job-3-1")] == ["job-3-1"]


def test_a_complete_day_never_changes_and_a_partial_one_is_replaced_once_over(storage, redis_client, history):
    archiver(storage, redis_client).archive(WS, D4, now=NOW)
    before = storage.client.get_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D2))["Body"].read()
    add(redis_client, datetime(2026, 11, 5, 20, tzinfo=UTC), "completed", "late")  # later on D4
    again = archiver(storage, redis_client).archive(WS, D2, now=NOW)
    assert again.unchanged and again.written == {}
    assert storage.client.get_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D2))["Body"].read() == before
    tomorrow = NOW + timedelta(days=1)
    done = archiver(storage, redis_client).archive(WS, D4, now=tomorrow)
    assert done.written == {D4: "complete"} and done.entries == 3 and not done.partial
    assert redis_client.xlen(audit_stream_key(WS)) == 0
    assert verify(storage, redis_client, today=D4 + timedelta(days=1)).ok
    with pytest.raises(ArchiveRefused, match="has not begun yet"):
        archiver(storage, redis_client).archive(WS, D4 + timedelta(days=2), now=tomorrow)


def _rewrite(storage, day: date, change) -> None:
    key = storage.audit_key(WS, day)
    lines = gzip.decompress(storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()).splitlines()
    storage.client.put_object(Bucket=storage.bucket, Key=key, Body=gzip.compress(b"\n".join(change(lines)) + b"\n"))


def test_a_modified_day_is_named(storage, redis_client, history):
    archiver(storage, redis_client).archive(WS, D4, now=NOW)
    _rewrite(storage, D2, lambda lines: [lines[0], lines[1].replace(b"completed", b"failed"), *lines[2:]])
    report = verify(storage, redis_client)
    assert not report.ok and report.first_bad == D2
    assert "modified" in dict(report.problems)[D2]


def test_a_re_signed_forgery_with_another_key_is_named(storage, redis_client, history):
    archiver(storage, redis_client).archive(WS, D4, now=NOW)
    AuditArchiver(storage, AuditTrail(redis_client), Ed25519PrivateKey.generate()).archive(WS, D4, now=NOW)
    report = verify(storage, redis_client)  # D4 (partial) was rewritten with a key that is not the deployment's
    assert report.first_bad == D4 and "signature does not verify" in dict(report.problems)[D4]
    assert verify(storage, redis_client, since=D1).first_bad == D4


def test_a_deleted_day_in_the_middle_or_at_either_end_is_named(storage, redis_client, history):
    archiver(storage, redis_client).archive(WS, D3, now=NOW)
    storage.client.delete_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D2))
    report = verify(storage, redis_client)
    assert report.first_bad == D2 and "deleted" in dict(report.problems)[D2]
    storage.client.delete_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D3))
    assert verify(storage, redis_client).first_bad == D2
    storage.client.delete_object(Bucket=storage.bucket, Key=storage.audit_key(WS, D1))
    report = verify(storage, redis_client)  # nothing left: Redis remembers what was archived
    assert report.first_bad == D1 and not report.ok


def test_reordered_days_are_named(storage, redis_client, history):
    archiver(storage, redis_client).archive(WS, D3, now=NOW)
    k1, k2 = storage.audit_key(WS, D1), storage.audit_key(WS, D2)
    b1 = storage.client.get_object(Bucket=storage.bucket, Key=k1)["Body"].read()
    b2 = storage.client.get_object(Bucket=storage.bucket, Key=k2)["Body"].read()
    storage.client.put_object(Bucket=storage.bucket, Key=k1, Body=b2)
    storage.client.put_object(Bucket=storage.bucket, Key=k2, Body=b1)
    report = verify(storage, redis_client)
    assert report.first_bad == D1 and "reordered" in dict(report.problems)[D1]


def test_purge_and_retention_keep_the_trail_and_archives_expire_on_their_own_schedule(storage, redis_client,
                                                                                     history):
    archiver(storage, redis_client).archive(WS, D3, now=NOW)
    export = storage.export_key(WS, "alerts", "j1", "csv", NOW)
    with storage.open_upload(export, "text/csv") as upload:
        upload.write(b"id\n")
    outcome = purge_workspace(storage, redis_client, WS)
    assert outcome.complete and not storage.exists(export)
    assert [a.day for a in list_archives(storage, WS)] == [D1, D2, D3]
    purged = [e for e in AuditTrail(redis_client).entries(WS) if e.event == "purged"]
    assert len(purged) == 1 and purged[0].details["files"] == 1 and purged[0].actor == "system:retention"
    from eclipse_exports.retention.cleanup import run_cleanup
    from eclipse_exports.retention.policy import RetentionPolicy

    summary = run_cleanup(storage, redis_client, RetentionPolicy(), as_of=datetime.now(UTC) + timedelta(days=365))
    assert summary.files_removed == 0 and [a.day for a in list_archives(storage, WS)] == [D1, D2, D3]
    later = NOW + timedelta(days=2)
    result = archiver(storage, redis_client, retention_days=2).archive(WS, later.date(), now=later)
    assert result.expired == [D1, D2, D3]  # older than two days before Nov 7
    assert verify_archives(storage, AuditTrail(redis_client), WS, KEY.public_key(), later.date(),
                           retention_days=2).ok


def test_two_runs_archiving_overlapping_days_at_once_leave_one_intact_chain(storage, redis_client, history):
    """A backfill's runs may start together; one workspace is archived by one of them at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda d: archiver(storage, redis_client).archive(WS, d, now=NOW), [D4, D2]))
    assert sum(len(o.written) for o in done) == 4  # each day written once, by whichever came first
    report = verify(storage, redis_client)
    assert report.ok and report.entries == 7
    assert [e.event_id for e in read_trail(storage, AuditTrail(redis_client), WS)] == history
