"""What watching the queue costs: one observation of ``export_request_queue`` and the metrics scrapes of a minute,
at 10,000 jobs in the last hour.

Starts its own Redis on a free port and fills it as an hour of traffic would, through the project's own code:
``--jobs`` requests (default 10,000) on the request stream, each taken by the intake's status path
(``queued`` with its stream entry, ``running``, then ``completed`` or, one in ten, ``failed``: every change
through ``JobStatusStore.record_transition``, as the product writes them), ``--unread`` entries the sensor has
not read yet, and 50 dead letters. Then it times, ``--repeats`` times (default 20), what a minute of
observation does: one ``read_queue_health`` (the sensor's work besides two run counts in Dagster's storage)
and ``--scrapes`` metrics scrapes (default 4: Prometheus every 15 s). Prints the median and worst CPU-s of
this process (``getrusage``) and of the Redis server (its ``INFO cpu``) per minute of observation, the
figures it read, and the load average. Target: under 0.2 CPU-s per minute.

    .venv/bin/python bench/observation_cost.py [--jobs 10000] [--unread 200] [--scrapes 4] [--repeats 20]
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eclipse_exports.local.services import start_redis  # noqa: E402
from eclipse_exports.models import ErrorCode, ExportRequest  # noqa: E402
from eclipse_exports.observability.health import read_queue_health  # noqa: E402
from eclipse_exports.observability.metrics import exposition  # noqa: E402
from eclipse_exports.queue.keys import DEAD_LETTER_STREAM, REQUEST_STREAM  # noqa: E402
from eclipse_exports.queue.status import JobStatusStore  # noqa: E402

RESOURCES = ("alerts", "infringements", "actions")
FORMATS = ("csv", "jsonl", "parquet", "json")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def fill(client: redis.Redis, jobs: int, unread: int) -> None:
    """An hour of traffic written as the product writes it (see the module docstring)."""
    store = JobStatusStore(client)
    now = datetime.now(UTC)
    batch = 500
    for start in range(0, jobs, batch):
        requests = [ExportRequest.from_payload(json.dumps({
            "id": f"bench-{n:06d}", "workspaceId": f"ws_{n % 40:03d}", "userId": "usr_bench",
            "resourceType": RESOURCES[n % 3], "format": FORMATS[n % 4]}))
            for n in range(start, min(jobs, start + batch))]
        pipe = client.pipeline(transaction=False)
        for request in requests:
            pipe.xadd(REQUEST_STREAM, {"payload": request.to_payload()})
        entries = [e.decode() for e in pipe.execute()]
        for request, entry in zip(requests, entries, strict=True):
            store.queued(request, now, entry)
            store.running(request, "run-bench", now)
            if int(request.id.split("-")[1]) % 10 == 0:
                store.failed(request.id, ErrorCode.EXPORT_FAILED, "bench", now, "run-bench")
            else:
                store.completed(request.id, {"rowCount": 1000, "byteSize": 65_536, "filePath": "k",
                                             "completedAt": now})
    client.set("eclipse:exports:intake:last-entry", client.xrevrange(REQUEST_STREAM, count=1)[0][0])
    pipe = client.pipeline(transaction=False)
    for n in range(unread):
        pipe.xadd(REQUEST_STREAM, {"payload": json.dumps({"id": f"unread-{n}"})})
    for _ in range(50):
        pipe.xadd(DEAD_LETTER_STREAM, {"payload": b"x" * 300, "reason": "bench", "errorCode": "invalid_request"})
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--unread", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        service = start_redis(log_file=Path(folder) / "redis.log")
        try:
            client = redis.Redis.from_url(service.url)
            filled = time.monotonic()
            fill(client, args.jobs, args.unread)
            print(f"filled Redis with {args.jobs:,} jobs of the last hour, {args.unread} unread entries and 50 dead "
                  f"letters in {time.monotonic() - filled:.1f} s")
            health = read_queue_health(client)
            per_minute, server = [], []
            for _ in range(args.repeats):
                mine, theirs = cpu(), redis_cpu(client)
                health = read_queue_health(client)
                for _scrape in range(args.scrapes):
                    exposition(client)
                per_minute.append(cpu() - mine)
                server.append(redis_cpu(client) - theirs)
        finally:
            service.stop()
    print(f"figures read: completed {health.overall.completed:,}, failed {health.overall.failed:,}, lag "
          f"{health.lag_entries}, dead letters {health.dead_letters_last_hour}, p50 "
          f"{health.overall.p50_seconds:.1f} s, p95 {health.overall.p95_seconds:.1f} s")
    print(f"one minute of observation (1 queue observation + {args.scrapes} metrics scrapes), {args.repeats} "
          f"repeats:")
    print(f"  this process: median {statistics.median(per_minute):.3f} CPU-s, worst {max(per_minute):.3f} CPU-s")
    print(f"  Redis server: median {statistics.median(server):.3f} CPU-s, worst {max(server):.3f} CPU-s")
    total = statistics.median(per_minute) + statistics.median(server)
    print(f"  together: {total:.3f} CPU-s per minute (target < 0.2)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
