#!/usr/bin/env bash
# The production install: the product's Python packages (requirements.lock) and the eclipse_exports package
# itself, installed (not editable) and compiled, into one virtualenv. Nothing of development: no pytest,
# moto, ruff or local S3 (those are requirements-dev.lock, scripts/bootstrap.sh), no redis-server
# (Redis is a service of its own in production). The only system packages are Debian's chromium and DejaVu
# fonts (Playwright prints the weekly report's PDF with them) and python3-venv, installed with apt when
# missing and allowed.
#
#   deploy/install.sh [--venv DIR] [--no-system-packages]
#
# DIR defaults to $ECLIPSE_VENV, else the checkout's .venv (deploy/dagster-service.sh's default too).
# Run it again after `git pull`: the package is reinstalled, the lock's packages only where they changed.
set -euo pipefail
SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ECLIPSE_VENV:-$SOURCE/.venv}"
SYSTEM_PACKAGES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --no-system-packages) SYSTEM_PACKAGES=0; shift ;;
    *) echo "usage: $0 [--venv DIR] [--no-system-packages]" >&2; exit 2 ;;
  esac
done

need=()
# Chromium prints the weekly report's PDF (eclipse_exports/reports/pdf.py); the browser tests use it too.
command -v chromium >/dev/null || need+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)  # the report's print font
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$SYSTEM_PACKAGES" = 0 ]; then
    echo "install: missing system packages (install them first): ${need[*]}" >&2
    exit 2
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install: installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip uv
# Compiled bytecode: every Dagster run is a new process and would otherwise compile what it imports.
UV_COMPILE_BYTECODE=1 "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -r "$SOURCE/requirements.lock"
had_build=0; [ -e "$SOURCE/build" ] && had_build=1
UV_COMPILE_BYTECODE=1 "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps --reinstall-package \
  eclipse-exports "$SOURCE"
# setuptools leaves its scratch folder in the checkout; it is not part of anything.
[ "$had_build" = 1 ] || rm -rf "$SOURCE/build"
echo "install: eclipse-exports installed in $VENV (deploy/dagster-service.sh uses it as ECLIPSE_VENV)"
