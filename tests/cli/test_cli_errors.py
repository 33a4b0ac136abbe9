"""An error no command foresaw is one line and exit 1, never a traceback (ECLIPSE_DEBUG=1 shows it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPORTS = Path(sys.executable).parent / "eclipse-exports"


def test_an_unforeseen_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECLIPSE_")}
    env["ECLIPSE_DATA_DIR"] = str(tmp_path)
    args = [str(EXPORTS), "cleanup", "--as-of", "0001-01-01T00:00:00+05:00", "--dry-run"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: OverflowError: ")
    debug = subprocess.run(args, env={**env, "ECLIPSE_DEBUG": "1"}, capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("args", [["status", "job_1", "--watch", "--timeout", "-5"],
                                  ["report-backfill", "--timeout", "0"],
                                  ["audit", "archive", "--timeout", "-1"]])
def test_a_wait_of_no_time_is_refused(args, tmp_path):
    result = subprocess.run([str(EXPORTS), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ECLIPSE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2 and "Invalid value for '--timeout'" in result.stderr, result.stderr


def test_report_backfill_names_an_unknown_workspace_and_an_unreadable_database(tmp_path):
    from sqlalchemy import create_engine

    from eclipse_exports.source.demo_data import load_demo_data

    url = f"sqlite:///{tmp_path / 'eclipse.db'}"
    load_demo_data(create_engine(url), "tiny", seed=3)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ECLIPSE_")},
           "ECLIPSE_DATA_DIR": str(tmp_path / "data")}
    args = [str(EXPORTS), "report-backfill", "--weeks", "1", "--dagster-url", "http://127.0.0.1:9"]
    typo = subprocess.run([*args, "--workspace", "ws_acmee"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**env, "ECLIPSE_DATABASE_URL": url})
    assert typo.returncode == 2 and "unknown workspace(s): ws_acmee" in typo.stderr, typo.stderr
    archived = subprocess.run([*args, "--workspace", "ws_acme", "--workspace", "ws_umbrella"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env={**env, "ECLIPSE_DATABASE_URL": url})
    assert archived.returncode == 2, archived.stderr
    assert "no reports for workspace(s) that are not active: ws_umbrella (archived)" in archived.stderr
    down = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120, env={
        **env, "ECLIPSE_DATABASE_URL": "postgresql+psycopg2://eclipse:s3cret-pw@127.0.0.1:9/eclipse"})
    assert down.returncode == 2 and "cannot read workspaces from postgresql+psycopg2://***@127.0.0.1:9/" in down.stderr
    assert "s3cret-pw" not in down.stderr and "Traceback" not in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1, down.stderr  # the driver's hints and link left out
    assert down.stderr.rstrip().endswith("Connection refused"), down.stderr
    unmailed = subprocess.run([*args, "--email", "--dry-run"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={**env, "ECLIPSE_DATABASE_URL": url})
    assert unmailed.returncode == 0 and "ECLIPSE_SMTP_URL is unset, so --email mails nobody" in unmailed.stderr
