"""What loading the code location imports: every run worker pays for it, so what only some runs need stays out.

Each Dagster run is a fresh process that imports ``eclipse_exports.definitions``
before it does anything (bench/run_cost.py measures the cost). pandas is never
needed; Polars only for JSON exports, Jinja2 only for reports and emails, ADBC
only for PostgreSQL sources, pyarrow.parquet only for Parquet: they are imported
where they are used. A module that imports one of them at the top fails this test.
"""

import json
import subprocess
import sys

NOT_AT_LOAD = ("pandas", "polars", "jinja2", "adbc_driver_manager", "adbc_driver_postgresql", "pyarrow.parquet")


def test_loading_the_code_location_imports_no_pandas_polars_jinja2_adbc_or_parquet():
    probe = ("import json, sys; import eclipse_exports.definitions; "
             f"print(json.dumps([m for m in {NOT_AT_LOAD!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [], (
        "the code location's import pulled these in; import them where the run uses them (with a one-line reason)")



EXPORT_IN_A_FRESH_PROCESS = """
import json, sys
from sqlalchemy import create_engine
from eclipse_exports.exports.run import ExportLimits, run_export
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.storage.client import ExportStorage, make_s3_client
import redis
database_url, redis_url, s3_endpoint, bucket = sys.argv[1:5]
storage = ExportStorage(make_s3_client(s3_endpoint), bucket)
for n, fmt in enumerate(("csv", "parquet")):
    request = ExportRequest.from_payload(json.dumps({"id": f"no-pandas-{n}", "workspaceId": "ws_a", "userId": "u_owner",
                                                     "resourceType": "infringements", "format": fmt}))
    result = run_export(request, engine=create_engine(database_url), storage=storage,
                        status=JobStatusStore(redis.Redis.from_url(redis_url)), limits=ExportLimits(), run_id="r")
    assert result.row_count > 0
print(json.dumps([m for m in ("pandas", "polars", "jinja2") if m in sys.modules]))
"""


def test_a_postgresql_export_run_imports_no_pandas(pg_engine, redis_url, s3_endpoint, bucket):
    url = pg_engine.url.render_as_string(hide_password=False)
    result = subprocess.run([sys.executable, "-c", EXPORT_IN_A_FRESH_PROCESS, url, redis_url, s3_endpoint, bucket],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    # pyarrow imports pandas whenever a Python value is converted (writers build their constants from buffers).
    assert json.loads(result.stdout) == []
