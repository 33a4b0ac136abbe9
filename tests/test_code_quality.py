"""The code location loads and the code is ruff-clean."""

import subprocess
import sys
from pathlib import Path

from eclipse_exports.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_with_the_contract_names():
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} >= {
        "alerts_export", "infringements_export", "actions_export"}
    assert {s.name for s in repo.sensor_defs} >= {"export_request_sensor", "export_run_failure_sensor"}
    assert repo.get_job("alerts_export_job") is not None


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "eclipse_exports", "tests", "bench"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
