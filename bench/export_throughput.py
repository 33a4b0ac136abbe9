"""Export throughput and memory on PostgreSQL, side by side with COPY and with naive pandas.

    .venv/bin/python bench/export_throughput.py [--rows 1000000] [--resource alerts|audit_logs]

Starts its own PostgreSQL cluster, Redis and SeaweedFS (S3) in a temporary
folder, seeds ``--rows`` alerts (or audit log rows, ``--resource audit_logs``, with a JSON ``details``
object each) for one workspace, then runs each variant in
a fresh child process, all uploading to the same S3 endpoint (with SSE-S3, the default):

- ``copy``: the baseline, ``COPY (SELECT ...) TO STDOUT WITH CSV HEADER``
  streamed into an S3 multipart upload;
- ``csv``, ``parquet``, ``jsonl``: this project's export (``run_export``);
- ``pandas``: ``pandas.read_sql`` + ``DataFrame.to_csv`` + one PUT.

Prints rows per second, the peak RSS of each child process (its VmHWM), and each variant's
throughput relative to the baseline. Run with ``--rows 5000000`` to see
whether memory stays flat as the export grows. ``--repeat N`` runs each variant N times and
prints the spread of its peak RSS (it varies from run to run with the allocators' timing);
``--title-bytes 800`` makes the rows ~1 KB wide, like tests/exports/test_memory.py's.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WORKSPACE = "ws_bench"
VARIANTS = ["copy", "csv", "parquet", "jsonl", "pandas"]
BASELINE_SQL = (
    "SELECT a.id, a.title, a.url, b.name AS brand, a.severity, a.status, "
    "to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS detected_at, a.monitor_source "
    "FROM alerts a LEFT JOIN brands b ON b.id = a.brand_id WHERE a.workspace_id = 'ws_bench' "
    "ORDER BY a.detected_at, a.id"
)
AUDIT_BASELINE_SQL = (
    "SELECT l.id, to_char(l.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS occurred_at, "
    "u.email AS actor_email, l.action, l.target_type, l.target_id, l.ip_address, l.user_agent, l.details "
    "FROM audit_logs l LEFT JOIN users u ON u.id = l.actor_id WHERE l.workspace_id = 'ws_bench' "
    "ORDER BY l.occurred_at, l.id"
)
AUDIT_SEED_SQL = """
INSERT INTO audit_logs (id, workspace_id, actor_id, action, target_type, target_id, ip_address, user_agent, details,
                        occurred_at)
SELECT 'aud_' || lpad(g::text, 9, '0'), 'ws_bench', CASE WHEN g % 10 = 0 THEN NULL ELSE 'usr_bench' END,
  (ARRAY['alert.acknowledged','infringement.status_changed','action.created','member.added','auth.login',
         'export.requested'])[1 + g % 6],
  (ARRAY['alert','infringement','action','user','user','export'])[1 + g % 6],
  'tgt_' || substr(md5(g::text), 1, 12),
  CASE WHEN g % 10 = 0 THEN NULL ELSE '198.51.100.' || (1 + g % 254) END,
  CASE WHEN g % 10 = 0 THEN NULL WHEN g % 97 = 0 THEN '=cmd|calc' ELSE
    'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0' END,
  '{"from": "open", "to": "in_review", "note": "' || substr(md5((g * 3)::text), 1, 16) || '", "n": ' || g || '}',
  timestamptz '2026-08-01 00:00:00+00' + (g % 7776000) * interval '1 second'
FROM generate_series(:first, :last) AS g
"""
SEED_SQL = """
INSERT INTO alerts (id, workspace_id, brand_id, title, url, severity, status, detected_at, monitor_source)
SELECT 'alt_' || lpad(g::text, 9, '0'), 'ws_bench', CASE WHEN g % 3 = 0 THEN 'br_2' ELSE 'br_1' END,
  'Phishing page impersonating Bench ' || substr(md5(g::text), 1, 12) || repeat(md5((g * 5)::text), :pad)
    || CASE WHEN g % 50 = 0 THEN ', "quoted"' WHEN g % 77 = 0 THEN ' – ünïcödé' WHEN g % 91 = 0 THEN '' ELSE '' END,
  CASE WHEN g % 97 = 0 THEN '=HYPERLINK("https://evil.example")'
       ELSE 'https://bench-' || substr(md5((g * 7)::text), 1, 10) || '.example/login?session='
            || substr(md5((g * 13)::text), 1, 16) END,
  (ARRAY['low','medium','high','critical'])[1 + g % 4],
  (ARRAY['new','acknowledged','resolved','dismissed'])[1 + (g / 4) % 4],
  timestamptz '2026-08-01 00:00:00+00' + (g % 7776000) * interval '1 second' + (g % 1000) * interval '1 millisecond',
  CASE WHEN g % 31 = 0 THEN NULL ELSE (ARRAY['domain_watch','marketplace_scan','social_monitor'])[1 + g % 3] END
FROM generate_series(:first, :last) AS g
"""


def seed(database_url: str, rows: int, resource: str = "alerts", title_pad: int = 0) -> float:
    from sqlalchemy import create_engine, text

    from eclipse_exports.source.demo_data import create_schema

    started = time.monotonic()
    engine = create_engine(database_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces VALUES ('ws_bench', 'Bench', 'active', now())"))
        conn.execute(text("INSERT INTO users VALUES ('usr_bench', 'bench@bench.example', 'Bench')"))
        conn.execute(text("INSERT INTO workspace_members VALUES ('ws_bench', 'usr_bench', 'owner')"))
        conn.execute(text("INSERT INTO brands VALUES ('br_1', 'ws_bench', 'Bench'), ('br_2', 'ws_bench', 'Bench Pay')"))
    step = 1_000_000
    for first in range(1, rows + 1, step):
        with engine.begin() as conn:
            bounds = {"first": first, "last": min(rows, first + step - 1)}
            if resource == "audit_logs":
                conn.execute(text(AUDIT_SEED_SQL), bounds)
            else:
                conn.execute(text(SEED_SQL), {**bounds, "pad": title_pad})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {resource}"))
    engine.dispose()
    return time.monotonic() - started


def child(variant: str, env: dict) -> dict:
    """Run one variant in this process; returns rows, bytes and seconds."""
    from eclipse_exports.storage.client import ExportStorage, make_s3_client

    storage = ExportStorage(make_s3_client(env["endpoint"]), env["bucket"])
    job = f"bench-{variant}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    if variant == "copy":
        import psycopg2


        dsn = env["database_url"].replace("postgresql+psycopg2://", "postgresql://")
        conn = psycopg2.connect(dsn)
        key = f"bench/{job}.csv"
        baseline = AUDIT_BASELINE_SQL if env["resource"] == "audit_logs" else BASELINE_SQL
        with storage.open_upload(key, "text/csv") as upload:
            conn.cursor().copy_expert(f"COPY ({baseline}) TO STDOUT WITH CSV HEADER", upload)
        return {"seconds": time.monotonic() - started, "bytes": upload.bytes_written, "rows": None}
    if variant == "pandas":
        if env["resource"] != "alerts":
            raise SystemExit("the pandas variant reads alerts only")
        import io

        import pandas as pd
        from sqlalchemy import create_engine, text

        started = time.monotonic()
        engine = create_engine(env["database_url"])
        frame = pd.read_sql(text(BASELINE_SQL.replace("to_char(a.detected_at AT TIME ZONE 'UTC', "
                                                      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", "a.detected_at")), engine)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        body = buffer.getvalue().encode()
        storage.client.put_object(Bucket=env["bucket"], Key=f"bench/{job}.csv", Body=body)
        return {"seconds": time.monotonic() - started, "bytes": len(body), "rows": len(frame)}
    import redis

    from eclipse_exports.exports.run import ExportLimits, run_export
    from eclipse_exports.models import ExportRequest
    from eclipse_exports.queue.status import JobStatusStore
    from eclipse_exports.source.engine import source_engine

    started = time.monotonic()
    request = ExportRequest.from_payload(json.dumps({"id": job, "workspaceId": WORKSPACE, "userId": "usr_bench",
                                                     "resourceType": env["resource"], "format": variant}))
    result = run_export(request, engine=source_engine(env["database_url"]), storage=storage,
                        status=JobStatusStore(redis.Redis.from_url(env["redis_url"])),
                        limits=ExportLimits(), run_id="bench")
    return {"seconds": time.monotonic() - started, "bytes": result.byte_size, "rows": result.row_count}


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM), excluding what ``ru_maxrss`` inherits from the parent."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(variant: str, env: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", variant, "--env", json.dumps(env)],
                            stdout=subprocess.PIPE, env=os.environ.copy())
    output = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"variant {variant} failed (exit status {proc.returncode})")
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--resource", choices=["alerts", "audit_logs"], default="alerts")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant (the peak RSS spread)")
    parser.add_argument("--title-bytes", type=int, default=0,
                        help="make each alert title this much longer (wide rows: ~1 KB rows at 800)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, json.loads(args.env))
        result["peak_rss_mb"] = peak_rss_mib()
        print(json.dumps(result))
        return

    from eclipse_exports.local.services import free_port, start_postgres, start_redis, start_seaweedfs
    from eclipse_exports.storage.client import make_s3_client

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1")
    services = []
    with tempfile.TemporaryDirectory(prefix="eclipse-bench-") as tmp:
        try:
            postgres = start_postgres(Path(tmp) / "pg")
            services.append(postgres)
            services.append(redis_service := start_redis())
            s3 = start_seaweedfs(Path(tmp) / "s3", "bench", "bench", "bench-secret", s3_port=free_port())
            services.append(s3)
            client = make_s3_client(s3.url)
            for _ in range(120):
                try:
                    client.head_bucket(Bucket="bench")
                    break
                except Exception:  # noqa: BLE001 - SeaweedFS is still starting
                    time.sleep(0.5)
            seconds = seed(postgres.url, args.rows, args.resource, args.title_bytes // 32)
            print(f"seeded {args.rows:,} {args.resource} rows in {seconds:.1f}s; machine: {os.cpu_count()} CPUs, "
                  f"Python {sys.version.split()[0]}")
            env = {"database_url": postgres.url, "redis_url": redis_service.url, "endpoint": s3.url,
                   "bucket": "bench", "resource": args.resource}
            results = {}
            for variant in args.variants.split(","):
                for n in range(1, args.repeat + 1):
                    name = variant if args.repeat == 1 else f"{variant}#{n}"
                    results[name] = run_child(variant, env)
                    results[name]["load"] = os.getloadavg()[0]
        finally:
            for service in reversed(services):
                service.stop()
    base = results.get("copy") or results.get("copy#1")
    print(f"\n{args.resource}: {'variant':<10}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'MB out':>10}"
          f"{'peak RSS MB':>13}{'vs COPY':>9}{'load 1m':>9}")
    for variant, r in results.items():
        rows = r["rows"] if r["rows"] is not None else args.rows
        rate = rows / r["seconds"]
        ratio = f"{rate / (args.rows / base['seconds']):.2f}x" if base else "-"
        print(f"{' ' * (len(args.resource) + 2)}{variant:<10}{rows:>12,}{r['seconds']:>10.2f}{rate:>12,.0f}"
              f"{r['bytes'] / 1e6:>10.1f}{r['peak_rss_mb']:>13.0f}{ratio:>9}{r['load']:>9.2f}")
    if args.repeat > 1:
        for variant in args.variants.split(","):
            peaks = [r["peak_rss_mb"] for name, r in results.items() if name.split("#")[0] == variant]
            print(f"{variant}: peak RSS {min(peaks):.0f}–{max(peaks):.0f} MB over {len(peaks)} runs "
                  f"(spread {max(peaks) - min(peaks):.0f} MB)")
    print(f"(peak RSS of this parent process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
