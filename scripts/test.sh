#!/usr/bin/env bash
# The test command: install what is missing (PostgreSQL and Redis binaries included), then run pytest.
# Every test service (Redis, PostgreSQL, S3 via moto, SMTP) is started by the tests on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-postgres
exec .venv/bin/python -m pytest "$@"
