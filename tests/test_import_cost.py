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

