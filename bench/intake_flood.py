"""Intake throughput: a flood of refused requests XADDed at once, then one valid request behind it.

    .venv/bin/python bench/intake_flood.py [--refused 2000] [--keep]

Starts its own Redis, S3 server (moto) and demo source database (SQLite), then `dagster dev` on the run command's
instance settings (``instance/dagster.yaml``) with one Celery run worker group, as `eclipse-exports dev` does.
Once the request sensor is ticking, XADDs ``--refused`` requests in one pipeline, half of them invalid (dead-lettered)
and half valid but refused (a viewer asking for infringements: ``forbidden``, status only), then one valid export.
Prints how fast the refusals were recorded (entries per second, from the XADD to the last ``rejected`` status), when
the valid request completed, and the load average. The target (issue 18): at least 200 refused entries per second,
and the valid request completes.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import create_engine

from eclipse_exports.local.services import free_port, start_redis, wait_for_port
from eclipse_exports.source.demo_data import load_demo_data
from eclipse_exports.storage.client import make_s3_client

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STREAM = "eclipse:exports:requests"


def refused_payloads(count: int) -> list[tuple[str, str]]:
    """(job id, payload) pairs: even ones invalid (an unknown format), odd ones forbidden for the user's role."""
    found = []
    for n in range(count):
        job_id = f"flood-{n:05d}"
        body = {"id": job_id, "workspaceId": "ws_acme", "userId": "usr_acme_viewer", "resourceType": "infringements",
                "format": "csv" if n % 2 else "xlsx"}
        found.append((job_id, json.dumps(body)))
    return found


def statuses(client: redis.Redis, ids: list[str]) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"eclipse:exports:job:{job_id}", "status")
    return pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refused", type=int, default=2000, help="refused requests in the flood")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    base = Path(tempfile.mkdtemp(prefix="eclipse-intake-flood-"))
    processes: list[subprocess.Popen] = []
    redis_service = start_redis(log_file=base / "redis.log")
    try:
        s3_port = free_port()
        processes.append(subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        wait_for_port("127.0.0.1", s3_port, timeout=60, proc=processes[-1])
        home = base / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "ECLIPSE_REDIS_URL": redis_service.url,
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1", "ECLIPSE_S3_BUCKET": "flood",
               "ECLIPSE_DATABASE_URL": f"sqlite:///{base / 'eclipse.db'}", "ECLIPSE_RUN_QUEUE": "flood-runs",
               "ECLIPSE_CLEANUP_CRON": "0 0 1 1 *"}
        os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
        make_s3_client(env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="flood")
        load_demo_data(create_engine(env["ECLIPSE_DATABASE_URL"]), "tiny", seed=1)
        for command, log in (([str(BIN / "eclipse-exports"), "run-workers", "--concurrency", "2"], "workers.log"),
                             ([str(BIN / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "-p",
                               str(free_port())], "dagster-dev.log")):
            with open(base / log, "wb") as out:
                processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        client = redis.Redis.from_url(redis_service.url)
        # The sensor is ticking once a warm-up request completes (the run workers are up then too).
        client.xadd(STREAM, {"payload": json.dumps({"id": "warmup", "workspaceId": "ws_globex",
                                                    "userId": "usr_globex_admin", "resourceType": "alerts",
                                                    "format": "csv"})})
        deadline = time.monotonic() + args.timeout
        while statuses(client, ["warmup"])[0] != b"completed":
            if time.monotonic() > deadline:
                sys.exit(f"the warm-up request did not complete; see {base}")
            time.sleep(0.5)
        flood = refused_payloads(args.refused)
        valid = {"id": "behind-the-flood", "workspaceId": "ws_globex", "userId": "usr_globex_admin",
                 "resourceType": "alerts", "format": "csv"}
        pipe = client.pipeline(transaction=False)
        for _job_id, payload in flood:
            pipe.xadd(STREAM, {"payload": payload})
        pipe.xadd(STREAM, {"payload": json.dumps(valid)})
        sent = time.monotonic()
        pipe.execute()
        ids = [job_id for job_id, _ in flood]
        refused_at = completed_at = None
        while time.monotonic() < sent + args.timeout and (refused_at is None or completed_at is None):
            now = time.monotonic()
            if refused_at is None and all(s == b"rejected" for s in statuses(client, ids)):
                refused_at = now
            if completed_at is None and statuses(client, [valid["id"]])[0] in (b"completed", b"failed"):
                completed_at = now
                final = statuses(client, [valid["id"]])[0]
            time.sleep(0.1)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        dead = client.xlen("eclipse:exports:dead-letter")
        print(f"\nflood of {args.refused} refused requests ({dead} dead-lettered, the rest forbidden), then one valid")
        if refused_at is None:
            print(f"  refusals: not all recorded within {args.timeout:.0f} s")
        else:
            took = refused_at - sent
            print(f"  refusals recorded in {took:.1f} s: {args.refused / took:.0f} entries/s (target >= 200)")
        if completed_at is None:
            print(f"  the valid request behind it: not finished within {args.timeout:.0f} s")
        else:
            print(f"  the valid request behind it: {final.decode()} {completed_at - sent:.1f} s after the XADD")
        print(f"  load average {load} ({os.cpu_count()} CPUs)")
    finally:
        for proc in reversed(processes):
            try:
                os.killpg(proc.pid, signal.SIGINT if proc is processes[-1] else signal.SIGTERM)
                proc.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        redis_service.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
