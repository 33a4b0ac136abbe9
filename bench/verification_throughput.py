"""How fast a stored export is verified, per format: one streamed GET, SHA-256, parse, row count.

Starts its own SeaweedFS, uploads one file per format built from the same synthetic alert rows
(``--rows``, default 300,000; about 500 bytes each), verifies each with
:func:`eclipse_exports.exports.verification.verify_export_file` and prints MB/s (of the stored file), rows/s,
this process's RSS before and its peak (VmHWM, reset before each verification) during it: the peak
stays near the baseline whatever the file size, since the file is never held in memory.

    .venv/bin/python bench/verification_throughput.py [--rows 300000] [--formats csv,parquet]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from eclipse_exports.exports.verification import ExpectedFile, verify_export_file
from eclipse_exports.local.services import free_port, start_seaweedfs
from eclipse_exports.models import ExportFormat
from eclipse_exports.storage.client import ExportStorage, make_s3_client

COLUMNS = ("id", "title", "url", "brand", "severity", "status", "detected_at", "monitor_source")


def rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from the current RSS


def files(rows: int, wanted: set[str]) -> dict[str, tuple[ExportFormat, bool, bytes]]:
    """The same rows as each ``wanted`` format's file (built in memory once, before any measurement)."""
    table = pa.table({
        "id": [f"alt_{n:09d}" for n in range(rows)],
        "title": [f"Counterfeit listing {n} " + "x" * 380 for n in range(rows)],
        "url": [f"https://shop.example/item/{n}" for n in range(rows)],
        "brand": ["Acme"] * rows, "severity": ["high"] * rows, "status": ["new"] * rows,
        "detected_at": ["2026-01-01T00:00:00Z"] * rows, "monitor_source": ["marketplace_scan"] * rows,
    })
    found: dict[str, tuple[ExportFormat, bool, bytes]] = {}
    if wanted & {"csv", "csv.gz"}:
        csv = io.BytesIO()
        pa_csv.write_csv(table, csv)
        found["csv"] = (ExportFormat.CSV, False, csv.getvalue())
        found["csv.gz"] = (ExportFormat.CSV, True, gzip.compress(csv.getvalue(), 6))
    if "parquet" in wanted:
        parquet = io.BytesIO()
        # Row groups of about 2 MiB, as the export's Parquet writer makes them (one per batch).
        pq.write_table(table, parquet, compression="zstd", row_group_size=4_000)
        found["parquet"] = (ExportFormat.PARQUET, False, parquet.getvalue())
    if wanted & {"json", "jsonl"}:
        records = table.to_pylist()
        found["jsonl"] = (ExportFormat.JSONL, False,
                          "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode())
        found["json"] = (ExportFormat.JSON, False, json.dumps(records, separators=(",", ":")).encode())
    return {name: found[name] for name in found if name in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--formats", default="csv,csv.gz,parquet,jsonl,json", help="comma-separated")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    with tempfile.TemporaryDirectory() as tmp:
        s3 = start_seaweedfs(Path(tmp) / "s3", "bench", os.environ["AWS_ACCESS_KEY_ID"],
                             os.environ["AWS_SECRET_ACCESS_KEY"], s3_port=free_port())
        try:
            storage = ExportStorage(make_s3_client(s3.url), "bench")
            storage.ensure_bucket()
            print(f"{'format':<8} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'rows/s':>10} {'RSS MiB':>8} {'peak MiB':>9}")
            for name, (fmt, compressed, body) in files(args.rows, set(args.formats.split(","))).items():
                key = f"workspaces/ws_bench/exports/20260101T000000Z-alerts-bench.{name}"
                storage.client.put_object(Bucket="bench", Key=key, Body=body)
                expected = ExpectedFile(key, fmt, compressed, len(body), hashlib.sha256(body).hexdigest(),
                                        args.rows, COLUMNS)
                size = len(body)
                del body
                reset_peak_rss()
                before, started = rss_mib("VmRSS"), time.monotonic()
                result = verify_export_file(storage, expected)
                seconds = time.monotonic() - started
                assert result.passed, result.summary()
                print(f"{name:<8} {size / 1e6:>7.1f} {seconds:>8.2f} {size / 1e6 / seconds:>7.1f} "
                      f"{args.rows / seconds:>10,.0f} {before:>8.0f} {rss_mib('VmHWM'):>9.0f}")
        finally:
            s3.stop()


if __name__ == "__main__":
    main()
