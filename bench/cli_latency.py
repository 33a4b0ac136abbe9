"""How fast the command line answers, and what each command loads.

Starts its own Redis and SeaweedFS on free ports, stores one completed job (status hash and file) and one
weekly report, then runs each command as a user would, a fresh ``eclipse-exports`` process each time,
``--repeats`` times (default 7): ``--help``, ``status``, ``jobs``, ``url``, ``report-url``, ``dead-letters``.
Prints each command's median and worst wall time and CPU-s (the child's own ``getrusage``), the load
average, and the heavy packages the command imported (from one extra run with ``python -X importtime``).
Target: every one of these answers in at most 0.4 s wall on a quiet 2-core machine, importing no Dagster,
pyarrow, pandas or SQLAlchemy.

    .venv/bin/python bench/cli_latency.py [--repeats 7]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import redis

from eclipse_exports.local.services import start_redis, start_seaweedfs
from eclipse_exports.storage.client import ExportStorage, make_s3_client

EXPORTS = str(Path(sys.executable).parent / "eclipse-exports")
HEAVY = ("dagster", "pyarrow", "pandas", "polars", "sqlalchemy", "boto3", "numpy", "jinja2", "redis", "botocore",
         "pydantic")
BUCKET, KEY_ID, SECRET = "cli-bench", "bench-key", "bench-secret"


def seed(env: dict[str, str]) -> dict[str, list[str]]:
    """One completed job with its file, one weekly report; returns the commands to time."""
    storage = ExportStorage(make_s3_client(env["AWS_ENDPOINT_URL"]), BUCKET)
    now = datetime.now(UTC)
    key = storage.export_key("ws_acme", "alerts", "bench-job", "csv", now)
    storage.client.put_object(Bucket=BUCKET, Key=key, Body=b"id,title\n1,x\n")
    monday = date.today() - timedelta(days=date.today().weekday() + 7)
    storage.client.put_object(Bucket=BUCKET, Key=storage.report_key("ws_acme", monday), Body=b"<html></html>")
    client = redis.Redis.from_url(env["ECLIPSE_REDIS_URL"])
    fields = {"id": "bench-job", "workspaceId": "ws_acme", "userId": "usr_acme_analyst", "resourceType": "alerts",
              "format": "csv", "status": "completed", "rowCount": "1", "byteSize": "13", "filePath": key,
              "createdAt": now.isoformat(), "expiresAt": (now + timedelta(hours=72)).isoformat().replace("+00:00", "Z")}
    client.hset("eclipse:exports:job:bench-job", mapping=fields)
    client.zadd("eclipse:exports:workspace:ws_acme:jobs", {"bench-job": now.timestamp()})
    client.xadd("eclipse:exports:dead-letter", {"payload": "{", "reason": "not JSON", "errorCode": "invalid_request",
                                                "sourceEntryId": "1-0"})
    return {"--help": ["--help"], "status": ["status", "bench-job"], "jobs": ["jobs", "--workspace", "ws_acme"],
            "url": ["url", "bench-job"], "report-url": ["report-url", "ws_acme", monday.isoformat()],
            "dead-letters": ["dead-letters"]}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``eclipse-exports`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([EXPORTS, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"`eclipse-exports {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    """The top-level packages from ``HEAVY`` that the command imported."""
    code = ("import sys; from eclipse_exports.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('\\nMODULES ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True).stdout
    loaded = set(out.rsplit("MODULES ", 1)[-1].split())
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        data = Path(tmp)
        redis_service = start_redis()
        s3 = start_seaweedfs(data / "seaweedfs", BUCKET, KEY_ID, SECRET, s3_port=_free_pair())
        try:
            env = {**os.environ, "ECLIPSE_REDIS_URL": redis_service.url, "AWS_ENDPOINT_URL": s3.url,
                   "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
                   "ECLIPSE_S3_BUCKET": BUCKET, "ECLIPSE_DATA_DIR": str(data)}
            os.environ.update(env)
            commands = seed(env)
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print(f"{'command':<14} {'median s':>9} {'worst s':>8} {'CPU-s':>6}  target ≤ 0.4 s   heavy imports")
            for name, args in commands.items():
                timed(args, env)  # warm the page cache
                runs = [timed(args, env) for _ in range(options.repeats)]
                walls = [w for w, _ in runs]
                median = statistics.median(walls)
                print(f"{name:<14} {median:9.3f} {max(walls):8.3f} {statistics.median(c for _, c in runs):6.3f}  "
                      f"{'met   ' if median <= 0.4 else 'MISSED'}          {', '.join(heavy_imports(args, env))}")
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            s3.stop()
            redis_service.stop()


def _free_pair() -> int:
    from eclipse_exports.local.services import free_port_pair

    return free_port_pair()


if __name__ == "__main__":
    main()
