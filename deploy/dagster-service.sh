#!/usr/bin/env bash
# Starts one process of the production deployment, in the foreground (systemd units call it; so can a shell):
#
#   deploy/dagster-service.sh code-server   # the code location as a gRPC server (sensors run here, runs start here)
#   deploy/dagster-service.sh daemon        # dagster-daemon: sensors, schedules, run queue, run monitoring, backfills
#   deploy/dagster-service.sh webserver     # the Dagster UI and its GraphQL API
#   deploy/dagster-service.sh run-workers   # one group of Celery run workers (runs execute here; any number of hosts)
#   deploy/dagster-service.sh migrate       # once after upgrading Dagster: upgrade the PostgreSQL schema
#
# Every setting comes from the environment (deploy/eclipse-exports.env.example lists each variable). The
# instance file deploy/dagster.yaml is copied into $DAGSTER_HOME on every start, so the one in deploy/ counts.
# The Python environment is $ECLIPSE_VENV (default: the checkout's .venv, built by scripts/bootstrap.sh).
set -euo pipefail
DEPLOY_DIR="$(cd "$(dirname "$0")" && pwd)"
VENV="${ECLIPSE_VENV:-$DEPLOY_DIR/../.venv}"

missing=()
for name in DAGSTER_HOME DAGSTER_PG_HOST DAGSTER_PG_PORT DAGSTER_PG_DB DAGSTER_PG_USERNAME DAGSTER_PG_PASSWORD \
            DAGSTER_COMPUTE_LOGS_BUCKET DAGSTER_CODE_SERVER_HOST DAGSTER_CODE_SERVER_PORT \
            ECLIPSE_DATABASE_URL ECLIPSE_REDIS_URL ECLIPSE_S3_BUCKET; do
  # DAGSTER_PG_PASSWORD may be empty (trust or certificate authentication), never unset.
  if [ -z "${!name+set}" ] || { [ -z "${!name}" ] && [ "$name" != DAGSTER_PG_PASSWORD ]; }; then missing+=("$name"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "dagster-service: set ${missing[*]} (see deploy/eclipse-exports.env.example)" >&2
  exit 2
fi

mkdir -p "$DAGSTER_HOME"
# Owner-only staging folders for compute logs and temporary files: nothing of the product's lands in /tmp.
export DAGSTER_COMPUTE_LOGS_DIR="${DAGSTER_COMPUTE_LOGS_DIR:-$DAGSTER_HOME/compute-logs}"
export TMPDIR="$DAGSTER_HOME/tmp"
mkdir -p "$DAGSTER_COMPUTE_LOGS_DIR" "$TMPDIR"
chmod 700 "$DAGSTER_COMPUTE_LOGS_DIR" "$TMPDIR"
# TLS to Dagster's PostgreSQL unless the environment chooses a mode (libpq reads PGSSLMODE).
export PGSSLMODE="${PGSSLMODE:-require}"
# Atomic, as the three processes may start at once.
cp "$DEPLOY_DIR/dagster.yaml" "$DAGSTER_HOME/.dagster.yaml.$$"
mv -f "$DAGSTER_HOME/.dagster.yaml.$$" "$DAGSTER_HOME/dagster.yaml"

case "${1:-}" in
  code-server)
    exec "$VENV/bin/dagster" code-server start \
      --host "${DAGSTER_CODE_SERVER_BIND:-$DAGSTER_CODE_SERVER_HOST}" --port "$DAGSTER_CODE_SERVER_PORT" \
      --module-name eclipse_exports.definitions --location-name eclipse_exports
    ;;
  daemon)
    exec "$VENV/bin/dagster-daemon" run --workspace "$DEPLOY_DIR/workspace.yaml"
    ;;
  webserver)
    exec "$VENV/bin/dagster-webserver" --workspace "$DEPLOY_DIR/workspace.yaml" \
      --host "${DAGSTER_WEBSERVER_HOST:-127.0.0.1}" --port "${DAGSTER_WEBSERVER_PORT:-3000}" \
      ${DAGSTER_WEBSERVER_PATH_PREFIX:+--path-prefix "$DAGSTER_WEBSERVER_PATH_PREFIX"}
    ;;
  run-workers)
    exec "$VENV/bin/eclipse-exports" run-workers --concurrency "${ECLIPSE_RUN_WORKER_CONCURRENCY:-4}" \
      ${ECLIPSE_RUN_WORKER_NAME:+--name "$ECLIPSE_RUN_WORKER_NAME"}
    ;;
  migrate)
    exec "$VENV/bin/dagster" instance migrate
    ;;
  *)
    echo "usage: $0 code-server|daemon|webserver|run-workers|migrate" >&2
    exit 2
    ;;
esac
