#!/usr/bin/env bash
# The test command: install what is missing (PostgreSQL and Redis binaries included), then run pytest.
# Every test service (Redis, PostgreSQL, S3 via moto, SMTP) is started by the tests on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-postgres
# Two pytest-xdist workers, one test file per worker at a time (a file's servers and fixtures stay together):
# the long tests mostly wait on servers, so two run side by side on 2 cores. `-n 0` runs in one process.
exec .venv/bin/python -m pytest -n "${ECLIPSE_TEST_WORKERS:-2}" --dist loadfile "$@"
