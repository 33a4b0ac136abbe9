"""Where a small export's time goes, XADD to ``completed``, on the run command's instance with Celery run workers.

    .venv/bin/python bench/latency_breakdown.py [--requests 7]

Starts its own Redis, S3 server (moto) and demo source database, and `dagster dev` with one run worker group
(``tests/live_dagster.py``'s ``DagsterDev``, the reliability tests' harness). Sends requests one after another
(raw XADD) and prints, for each, seconds after the XADD at which: the sensor picked it up (the status hash's
``createdAt``, whole seconds), the run was created, the daemon launched it (``STARTING``), it started on a worker
child, it succeeded, and the bench saw ``completed``; then the medians and the load average.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eclipse_exports.local.services import free_port, start_redis, wait_for_port  # noqa: E402
from eclipse_exports.source.demo_data import load_demo_data  # noqa: E402
from eclipse_exports.storage.client import make_s3_client  # noqa: E402
from tests.live_dagster import DagsterDev, wait_for_terminal  # noqa: E402

STEPS = ("picked up", "run created", "launched", "started", "succeeded", "completed seen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=7)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="eclipse-latency-"))
    service = start_redis(log_file=base / "redis.log")
    s3_port = free_port()
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    dev = None
    try:
        wait_for_port("127.0.0.1", s3_port, timeout=60, proc=moto)
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})
        make_s3_client(f"http://127.0.0.1:{s3_port}").create_bucket(Bucket="latency")
        load_demo_data(create_engine(f"sqlite:///{base / 'eclipse.db'}"), "tiny", seed=1)
        env = {**os.environ, "ECLIPSE_REDIS_URL": service.url, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
               "ECLIPSE_S3_BUCKET": "latency", "ECLIPSE_DATABASE_URL": f"sqlite:///{base / 'eclipse.db'}",
               "ECLIPSE_CLEANUP_CRON": "0 0 1 1 *"}
        dev = DagsterDev(base / "home", env, free_port()).start()
        client = redis.Redis.from_url(service.url)
        rows = []
        for n in range(args.requests):
            job_id = f"latency-{n}"
            entry = client.xadd("eclipse:exports:requests", {"payload": json.dumps(
                {"id": job_id, "workspaceId": "ws_globex", "userId": "usr_globex_admin", "resourceType": "alerts",
                 "format": "csv"})})
            sent = int(entry.decode().split("-")[0]) / 1000
            fields = wait_for_terminal(client, [job_id], 180)[job_id]
            seen = time.time()
            with dev.instance() as instance:
                record = next(r for r in instance.get_run_records()
                              if r.dagster_run.tags.get("eclipse/job_id") == job_id)
                first = {}
                for event in instance.get_records_for_run(record.dagster_run.run_id, limit=500).records:
                    kind = event.event_log_entry.dagster_event
                    if kind is not None:
                        first.setdefault(kind.event_type_value, event.event_log_entry.timestamp)
            picked = datetime.fromisoformat(fields["createdAt"].replace("Z", "+00:00")).timestamp()
            row = [max(0.0, picked - sent), record.create_timestamp.timestamp() - sent,
                   first["PIPELINE_STARTING"] - sent, first["PIPELINE_START"] - sent, first["PIPELINE_SUCCESS"] - sent,
                   seen - sent]
            rows.append(row)
            print(f"  {job_id}: " + ", ".join(f"{name} +{value:.2f}" for name, value in zip(STEPS, row, strict=True)),
                  flush=True)
            time.sleep(0.7 * (n % 3))  # vary the phase against the sensor's cycle
        medians = [statistics.median(column) for column in zip(*rows, strict=True)]
        print("\nmedian seconds after the XADD: " + ", ".join(f"{name} {value:.2f}" for name, value in
                                                            zip(STEPS, medians, strict=True)))
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    finally:
        if dev is not None:
            dev.stop()
        moto.kill()
        service.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
