"""deploy/eclipse-exports.env.example lists every environment variable the code and deploy/ read, and no other.

The names are read from the source (Settings.from_env and every other ``environ.get``), from the
``{env: ...}`` entries of the production instance and workspace files and from deploy/dagster-service.sh, so
a new setting without a line in the example fails here, and so does a line for a setting nobody reads.
"""

import re
from pathlib import Path

from eclipse_exports.config import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "eclipse-exports.env.example"
READ_IN_PYTHON = re.compile(r"""(?:environ|env)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']"""
                            r"""|environ\[["']([A-Z][A-Z0-9_]+)["']\](?!\s*=[^=])""")
ENV_IN_YAML = re.compile(r"\{env: ([A-Z][A-Z0-9_]+)\}")
READ_IN_SHELL = re.compile(r"\$\{?([A-Z][A-Z0-9_]+)")
# Read by the code but not the operator's to set: boto3's older alias, and what `eclipse-exports dev` sets for
# its own child processes and its env.sh.
NOT_FOR_THE_OPERATOR = {"AWS_DEFAULT_REGION", "TMPDIR", "ECLIPSE_METRICS_URL"}
# Settings fields whose variable is not ECLIPSE_<FIELD>.
FIELD_VARIABLES = {"s3_endpoint_url": "AWS_ENDPOINT_URL"}


def listed() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.M))


def read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "eclipse_exports").rglob("*.py"):
        names |= {a or b for a, b in READ_IN_PYTHON.findall(path.read_text())}
    for name in ("dagster.yaml", "workspace.yaml"):
        names |= set(ENV_IN_YAML.findall((ROOT / "deploy" / name).read_text()))
    script = (ROOT / "deploy" / "dagster-service.sh").read_text()
    names |= set(READ_IN_SHELL.findall(script)) | set(re.findall(r"\b((?:DAGSTER|ECLIPSE)_[A-Z0-9_]+)\b", script))
    return names - NOT_FOR_THE_OPERATOR - {"DEPLOY_DIR", "VENV"}


def test_every_variable_the_code_reads_is_listed():
    missing = read_by_the_code() - listed()
    assert not missing, f"add to {EXAMPLE.name}: {sorted(missing)}"


def test_every_settings_field_has_its_variable_listed():
    variables = {FIELD_VARIABLES.get(name, f"ECLIPSE_{name.upper()}") for name in Settings.model_fields}
    assert variables - listed() == set()


def test_nothing_is_listed_that_nothing_reads():
    stale = {name for name in listed() - read_by_the_code() if name.startswith(("ECLIPSE_", "DAGSTER_"))}
    assert not stale, f"no code reads {sorted(stale)}"


def test_the_issue_s_seven_once_missing_variables_are_listed():
    assert {"ECLIPSE_REPORT_RETENTION_DAYS", "ECLIPSE_REPORTS_PER_RUN", "ECLIPSE_CLEANUP_CRON",
            "ECLIPSE_WORKSPACE_QUOTA_OVERRIDES", "ECLIPSE_PURGE_INTERVAL_SECONDS", "ECLIPSE_SENSOR_LONG_POLL_MS",
            "ECLIPSE_DAGSTER_URL", "ECLIPSE_RUN_HISTORY_DAYS"} <= listed()
