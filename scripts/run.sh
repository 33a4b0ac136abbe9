#!/usr/bin/env bash
# The run command: install what is missing, start Redis and S3 (SeaweedFS) if none are configured,
# seed the demo data on first start, and run Dagster (UI on http://127.0.0.1:3000, daemon, sensors on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/eclipse-exports dev "$@"
