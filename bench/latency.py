"""Request latency of a running Eclipse Exports (the run command's defaults): XADD → `completed`.

Start the product first (`./scripts/run.sh`), then:

    .venv/bin/python bench/latency.py [--sequential 10] [--burst 20]

Requests are XADDed with a plain Redis client, exactly as the web app does;
each is a small export (one week of ws_acme's critical alerts, CSV). Prints
the median and worst pick-up (XADD → `queued`) and end-to-end (XADD →
`completed`) times of sequential requests, then the time for a burst of
requests sent at once to all complete.
"""

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis

STREAM = "eclipse:exports:requests"
DONE = {"completed", "failed", "rejected"}


def payload(job_id: str) -> str:
    week_ago = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT00:00:00Z")
    return json.dumps({"id": job_id, "workspaceId": "ws_acme", "userId": "usr_acme_analyst",
                       "resourceType": "alerts", "format": "csv",
                       "filters": {"severity": ["critical"], "from": week_ago}})


def watch(client: redis.Redis, job_ids: list[str], sent: float, timeout: float) -> dict[str, dict]:
    """Poll the status hashes until every job is done; record when each became queued and done."""
    seen: dict[str, dict] = {j: {} for j in job_ids}
    deadline = sent + timeout
    while time.monotonic() < deadline and any("done" not in s for s in seen.values()):
        pipe = client.pipeline()
        for j in job_ids:
            pipe.hget(f"eclipse:exports:job:{j}", "status")
        now = time.monotonic()
        for j, status in zip(job_ids, pipe.execute(), strict=True):
            status = status.decode() if status else None
            if status and status != "pending" and "queued" not in seen[j]:
                seen[j]["queued"] = now - sent
            if status in DONE and "done" not in seen[j]:
                seen[j]["done"], seen[j]["status"] = now - sent, status
        time.sleep(0.05)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    client = redis.Redis.from_url(os.environ.get("ECLIPSE_REDIS_URL", "redis://localhost:6379/0"))

    pickups, totals = [], []
    for n in range(args.sequential):
        job = f"bench-seq-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        client.xadd(STREAM, {"payload": payload(job)})
        result = watch(client, [job], sent, args.timeout)[job]
        if result.get("status") != "completed":
            sys.exit(f"{job} ended {result.get('status', 'unfinished')}: is the product running (./scripts/run.sh)?")
        pickups.append(result["queued"])
        totals.append(result["done"])
        print(f"  request {n + 1:2d}: queued after {result['queued']:.2f}s, completed after {result['done']:.2f}s")
        time.sleep(1.7 * (n % 3))  # vary the phase against the sensor's 5 s evaluation cycle
    print(f"sequential ({args.sequential}): pick-up median {statistics.median(pickups):.2f}s max {max(pickups):.2f}s; "
          f"XADD→completed median {statistics.median(totals):.2f}s max {max(totals):.2f}s (target: median ≤ 5 s)")

    jobs = [f"bench-burst-{uuid.uuid4().hex[:8]}" for _ in range(args.burst)]
    sent = time.monotonic()
    pipe = client.pipeline(transaction=False)
    for job in jobs:
        pipe.xadd(STREAM, {"payload": payload(job)})
    pipe.execute()
    results = watch(client, jobs, sent, args.timeout)
    done = [r["done"] for r in results.values() if r.get("status") == "completed"]
    print(f"burst of {args.burst}: {len(done)} completed, last after {max(done) if done else float('nan'):.2f}s, "
          f"median {statistics.median(done) if done else float('nan'):.2f}s (target: all within 40 s)")


if __name__ == "__main__":
    main()
