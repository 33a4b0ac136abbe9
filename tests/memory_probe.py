"""Child process of tests/exports/test_memory.py: run one export and report peak RSS growth.

Usage: python -m tests.memory_probe DATABASE_URL S3_ENDPOINT BUCKET REDIS_URL FORMAT [FILTERS_JSON]
Prints one JSON object: baseline and peak RSS in MiB, rows and bytes written.
"""

import json
import sys

import redis

from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.source.engine import source_engine
from eclipse_exports.storage.client import ExportStorage, make_s3_client


def peak_rss_mib() -> float:
    """This process image's own peak RSS (VmHWM); ``ru_maxrss`` would include the parent's at fork."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    database_url, endpoint, bucket, redis_url, fmt = sys.argv[1:6]
    full_filters = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    engine = source_engine(database_url)
    storage = ExportStorage(make_s3_client(endpoint), bucket)
    status = JobStatusStore(redis.Redis.from_url(redis_url))

    def export(job_id: str, filters: dict) -> object:
        request = ExportRequest.from_payload(json.dumps({
            "id": job_id, "workspaceId": "ws_mem", "userId": "u_mem", "resourceType": "alerts", "format": fmt,
            "filters": filters}))
        return run_export(request, engine=engine, storage=storage, status=status, limits=ExportLimits(),
                          run_id="memory-test")

    # Warm up every code path on a handful of rows so the baseline includes imports and pools.
    export(f"warm-{fmt}", {"severity": ["critical"], "to": "2026-01-01T00:10:00Z"})
    baseline = peak_rss_mib()
    result = export(f"full-{fmt}", full_filters)
    peak = peak_rss_mib()
    print(json.dumps({"baseline_mib": baseline, "peak_mib": peak, "rows": result.row_count,
                      "bytes": result.byte_size}))


if __name__ == "__main__":
    main()
