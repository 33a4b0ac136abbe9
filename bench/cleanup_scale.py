"""Retention clean-up at scale: objects deleted per second and peak memory, at 10,000 and 100,000 objects.

    .venv/bin/python bench/cleanup_scale.py [--sizes 10000,100000] [--workspaces 100] [--in-flight 2]

Starts its own Redis and SeaweedFS (every SeaweedFS port on a free one) in a
temporary folder. For each size it fills a fresh bucket with that many export
files spread over ``--workspaces`` workspaces, half of them written before a
split moment and half after, gives every job a ``completed`` status hash, then
runs one clean-up pass (``retention.run_cleanup``) in a fresh child process
as of split + the retention, so exactly the old half is due. It checks that
exactly the new half survives and prints, per size: objects listed and
deleted, seconds, objects deleted per second, and the child's peak RSS
(VmHWM). Target: at least 2,000 objects deleted per second, and the same
peak RSS at every size. ``--in-flight`` overrides how many ``DeleteObjects``
batches the pass keeps in flight (``retention.BATCHES_IN_FLIGHT``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from export_throughput import peak_rss_mib

STAMP = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RETENTION_HOURS = 72
BODY = b"id,title\n" + b"x" * 200


def _keys(bucket_prefix: str, workspaces: int, count: int, half: str) -> list[tuple[str, str, str]]:
    """(workspace, job id, key) for ``count`` files spread over the workspaces."""
    from eclipse_exports.storage.client import ExportStorage

    storage = ExportStorage(None, "unused", bucket_prefix)
    out = []
    for n in range(count):
        workspace = f"ws_{n % workspaces:03d}"
        job = f"{half}-{n:07d}"
        out.append((workspace, job, storage.export_key(workspace, "alerts", job, "csv", STAMP + timedelta(seconds=n))))
    return out


def _put_chunk(args: tuple[str, str, list[str]]) -> int:
    from eclipse_exports.storage.client import make_s3_client

    endpoint, bucket, keys = args
    client = make_s3_client(endpoint)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=BODY), keys))
    return len(keys)


def fill(endpoint: str, bucket: str, keys: list[str]) -> None:
    chunks = [(endpoint, bucket, keys[i:i + 2000]) for i in range(0, len(keys), 2000)]
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_put_chunk, chunks))


def write_statuses(redis_url: str, jobs: list[tuple[str, str, str]]) -> None:
    import redis

    from eclipse_exports.queue.status import JobStatusStore

    client = redis.Redis.from_url(redis_url)
    store = JobStatusStore(client, RETENTION_HOURS)
    for i in range(0, len(jobs), 5000):
        pipe = client.pipeline(transaction=False)
        for workspace, job, key in jobs[i:i + 5000]:
            store.write(job, {"id": job, "workspaceId": workspace, "status": "completed", "filePath": key,
                              "downloadUrl": "https://example.invalid/x"}, pipe)
        pipe.execute()


def child(env: dict) -> dict:
    """One clean-up pass in this process; returns what it did."""
    import redis

    from eclipse_exports import retention
    from eclipse_exports.retention.cleanup import run_cleanup
    from eclipse_exports.retention.policy import RetentionPolicy
    from eclipse_exports.storage.client import ExportStorage, make_s3_client

    if env.get("in_flight"):
        retention.BATCHES_IN_FLIGHT = env["in_flight"]
    storage = ExportStorage(make_s3_client(env["endpoint"]), env["bucket"])
    summary = run_cleanup(storage, redis.Redis.from_url(env["redis_url"]),
                          RetentionPolicy(export_retention=timedelta(hours=RETENTION_HOURS)),
                          datetime.fromisoformat(env["as_of"]))
    return {"ok": summary.ok, "listed": summary.objects_listed, "deleted": summary.files_removed,
            "expired": summary.jobs_expired, "seconds": summary.seconds, "errors": summary.errors[:3],
            "failed": summary.failed_keys}


def run_child(env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(env)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"clean-up child failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated object counts")
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=0, help="DeleteObjects batches in flight (0: the default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(json.loads(args.child))
        result["peak_rss_mb"] = peak_rss_mib()
        print(json.dumps(result))
        return

    from eclipse_exports.local.services import free_port, start_redis, start_seaweedfs
    from eclipse_exports.storage.client import ExportStorage, make_s3_client

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="eclipse-cleanup-bench-") as tmp:
        redis_service = start_redis()
        s3 = start_seaweedfs(Path(tmp) / "s3", "warmup", "bench", "bench-secret", s3_port=free_port(),
                             log_file=Path(tmp) / "weed.log")
        try:
            client = make_s3_client(s3.url)
            for _ in range(240):
                try:
                    client.head_bucket(Bucket="warmup")
                    break
                except Exception:  # noqa: BLE001 - SeaweedFS is still starting
                    time.sleep(0.5)
            for size in sizes:
                bucket = f"cleanup-{size}"
                client.create_bucket(Bucket=bucket)
                started = time.monotonic()
                old, new = _keys("", args.workspaces, size // 2, "old"), _keys("", args.workspaces, size - size // 2,
                                                                                 "new")
                fill(s3.url, bucket, [k for _w, _j, k in old])
                time.sleep(1.05 - time.time() % 1)  # S3 dates are whole seconds: split on a fresh one
                split = datetime.now(UTC)
                time.sleep(1.05)
                fill(s3.url, bucket, [k for _w, _j, k in new])
                write_statuses(redis_service.url, old + new)
                print(f"{size:,} objects in {args.workspaces} workspaces written in "
                      f"{time.monotonic() - started:.0f}s", flush=True)
                result = run_child({"endpoint": s3.url, "bucket": bucket, "redis_url": redis_service.url,
                                    "as_of": (split + timedelta(hours=RETENTION_HOURS)).isoformat(),
                                    "in_flight": args.in_flight})
                survivors = {o["Key"] for o in ExportStorage(client, bucket).iter_objects("")}
                result["exact"] = survivors == {k for _w, _j, k in new} and result["deleted"] == len(old)
                results.append((size, result))
                print(json.dumps({"size": size, **result}), flush=True)
        finally:
            s3.stop()
            redis_service.stop()
    print(f"\n{'objects':>9}{'listed':>9}{'deleted':>9}{'seconds':>9}{'deleted/s':>11}{'peak RSS MB':>13}"
          f"{'exactly the old half':>22}")
    for size, r in results:
        print(f"{size:>9,}{r['listed']:>9,}{r['deleted']:>9,}{r['seconds']:>9.1f}{r['deleted'] / r['seconds']:>11,.0f}"
              f"{r['peak_rss_mb']:>13.0f}{'yes' if r['exact'] and r['ok'] else 'NO':>22}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
