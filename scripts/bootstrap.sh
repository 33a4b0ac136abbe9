#!/usr/bin/env bash
# Installs everything the project needs on a Debian or Ubuntu machine that has only Python and git:
# system packages (redis-server, and Debian's chromium that prints the weekly report's PDF; with
# --with-postgres, for the tests: PostgreSQL, poppler-utils to read PDFs and a Java runtime for the Nu HTML checker) and the Python
# virtualenv .venv from the development lock file (requirements-dev.lock: the product's requirements.lock
# plus the local S3 and the test tools). Safe to run again: it only does what is missing.
#
# --production: the production install instead (deploy/install.sh: requirements.lock and the package only,
# chromium, no redis-server, no test tools); further arguments go to it (--venv DIR, --no-system-packages).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--production" ]; then
  shift
  exec bash deploy/install.sh "$@"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  echo "bootstrap: installing system packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v unshare >/dev/null || need+=(util-linux)
# Chromium prints the weekly report's PDF (eclipse_exports/reports/pdf.py); the browser tests use it too.
command -v chromium >/dev/null || need+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)  # the report's print font
if [ "${1:-}" = "--with-postgres" ]; then
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
  fi
  # pdftoppm and pdftotext: the browser test reads the report's PDF page by page.
  command -v pdftoppm >/dev/null || need+=(poppler-utils)
  command -v java >/dev/null || need+=(default-jre-headless)
fi
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.lock requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages from requirements-dev.lock"
  .venv/bin/python -m pip install -q --upgrade pip uv
  # Compiled bytecode halves the start-up time of every Dagster run process.
  UV_COMPILE_BYTECODE=1 .venv/bin/uv pip install -q --python .venv/bin/python -r requirements-dev.lock
  UV_COMPILE_BYTECODE=1 .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The project's own bytecode too (an editable install leaves it out): every Dagster run is a new
# process, and with PYTHONDONTWRITEBYTECODE set each one would compile the package again. Quick when current.
.venv/bin/python -m compileall -q eclipse_exports
