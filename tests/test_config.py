"""Settings from the environment: a bad value is one clear error naming the variable, in the CLI and in `dev`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eclipse_exports.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = Path(sys.executable).parent / "eclipse-exports"
BAD = {
    "ECLIPSE_S3_SSE": "foo",
    "ECLIPSE_RUN_HISTORY_DAYS": "-1",
    "ECLIPSE_RETENTION_HOURS": "abc",
    "ECLIPSE_REPORTS_PER_RUN": "501",
    "ECLIPSE_REPORT_PDF": "maybe",
    "ECLIPSE_SENSOR_LONG_POLL_MS": "abc",
    "ECLIPSE_WORKSPACE_QUOTA_OVERRIDES": "ws_a=x",
    "ECLIPSE_ALLOW_PLAIN_HTTP": "sure",
    "ECLIPSE_S3_PREFIX": "../other-team",
}


@pytest.mark.parametrize("variable", sorted(BAD))
def test_a_bad_value_names_its_variable(variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: BAD[variable]})


def test_yes_no_values_and_the_long_poll():
    assert Settings.from_env({"ECLIPSE_REPORT_PDF": "Off"}).report_pdf is False
    assert Settings.from_env({"ECLIPSE_ALLOW_PLAIN_HTTP": "1"}).allow_plain_http is True
    assert Settings.from_env({}).sensor_long_poll_ms == 3500
    with pytest.raises(SettingsError, match="ECLIPSE_SENSOR_LONG_POLL_MS"):
        Settings.from_env({"ECLIPSE_SENSOR_LONG_POLL_MS": "999999"})


@pytest.mark.parametrize("prefix, usable", [
    ("", True), ("prod", True), ("eu/prod-2/", True), ("/team_a/v1.2", True),
    ("..", False), ("prod/../x", False), ("./prod", False), ("prod//x", False), ("pr od", False), (".hidden", False),
])
def test_the_s3_prefix_is_a_plain_folder(prefix, usable):
    if usable:
        assert Settings.from_env({"ECLIPSE_S3_PREFIX": prefix}).s3_prefix == prefix
    else:
        with pytest.raises(SettingsError, match="ECLIPSE_S3_PREFIX"):
            Settings.from_env({"ECLIPSE_S3_PREFIX": prefix})


def _run(args, extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECLIPSE_")}
    env.update(ECLIPSE_DATA_DIR=str(tmp_path / "data"), **extra)
    return subprocess.run([str(EXPORTS), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_and_dev_answer_a_bad_setting_in_one_line(tmp_path):
    result = _run(["status", "nope"], {"ECLIPSE_S3_SSE": "foo"}, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: bad setting: ECLIPSE_S3_SSE='foo': String should match pattern '^(AES256|aws:kms|none)$'"]
    # A cron the code location refuses stops `dev` before it starts anything (no UI with a broken location).
    result = _run(["dev", "--port", "1"], {"ECLIPSE_REPORT_CRON": "bad"}, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the code location does not load: ECLIPSE_REPORT_CRON='bad'" in result.stderr
    assert not (tmp_path / "data" / "redis").exists()
