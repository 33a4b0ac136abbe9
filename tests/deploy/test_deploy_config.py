"""The production deployment's files agree with the run command's instance and with each other.

``deploy/dagster.yaml`` differs from ``instance/dagster.yaml`` only where the
deployment must (storage, compute logs); the Helm values carry the same queue,
retry, monitoring and sensor settings. Change one, change the others: these
tests fail until they agree again.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# What the production instance sets differently on purpose.
DEPLOYMENT_ONLY = {"storage", "compute_logs", "run_launcher", "local_artifact_storage"}
DEPLOY_ENV = {
    "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "", "DAGSTER_COMPUTE_LOGS_BUCKET": "logs",
    "DAGSTER_COMPUTE_LOGS_DIR": "/var/lib/eclipse-exports/dagster_home/compute-logs",
    "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": "4000",
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _camel(value):
    """Snake-case keys (dagster.yaml) as the Helm chart's camelCase keys, recursively."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def test_the_production_instance_has_the_run_commands_queue_retries_monitoring_and_sensors():
    dev, prod = _yaml(ROOT / "instance" / "dagster.yaml"), _yaml(DEPLOY / "dagster.yaml")
    shared = (dev.keys() | prod.keys()) - DEPLOYMENT_ONLY
    assert {key: prod.get(key) for key in shared} == {key: dev.get(key) for key in shared}
    assert prod["storage"].keys() == {"postgres"}
    assert prod["compute_logs"]["class"] == "S3ComputeLogManager"


def test_the_helm_values_carry_the_same_limits():
    dev, values = _yaml(ROOT / "instance" / "dagster.yaml"), _yaml(DEPLOY / "helm" / "values.yaml")
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert daemon["runCoordinator"]["config"]["queuedRunCoordinator"] == _camel(dev["run_coordinator"]["config"])
    assert daemon["runMonitoring"] == _camel(dev["run_monitoring"])
    assert daemon.get("runRetries") == _camel(dev.get("run_retries"))
    assert daemon["sensors"] == _camel(dev["sensors"])
    launcher = values["runLauncher"]["config"]["customRunLauncher"]
    assert values["runLauncher"]["type"] == "CustomRunLauncher"
    assert (launcher["module"], launcher["class"]) == (dev["run_launcher"]["module"], dev["run_launcher"]["class"])
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["telemetry"] == dev["telemetry"]
    assert values["retention"]["enabled"] is True
    assert {k: v for k, v in values["retention"].items() if k != "enabled"} == _camel(dev["retention"])
    assert values["computeLogManager"]["config"]["s3ComputeLogManager"]["bucket"] == \
        {"env": "DAGSTER_COMPUTE_LOGS_BUCKET"}
    assert values["postgresql"]["postgresqlParams"]["sslmode"] in ("require", "verify-ca", "verify-full")
    code = values["dagster-user-deployments"]["deployments"][0]
    assert code["dagsterApiGrpcArgs"] == ["--module-name", "eclipse_exports.definitions"]


def test_the_deploy_files_validate_as_dagster_config(tmp_path, monkeypatch):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.workspace.config_schema import ensure_workspace_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import DagsterPostgresStorage

    for name, value in DEPLOY_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    storage = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()),
                             config["storage"]["postgres"])
    assert storage.success and storage.value["postgres_db"]["db_name"] == "dagster", storage.errors
    logs = process_config(resolve_to_config_type(S3ComputeLogManager.config_type()), config["compute_logs"]["config"])
    assert logs.success and logs.value["bucket"] == "logs", logs.errors
    assert logs.value["local_dir"] == DEPLOY_ENV["DAGSTER_COMPUTE_LOGS_DIR"]
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] <= 7
    workspace = ensure_workspace_config(_yaml(DEPLOY / "workspace.yaml"), str(DEPLOY / "workspace.yaml"))
    assert workspace["load_from"][0]["grpc_server"]["location_name"] == "eclipse_exports"


def test_the_service_script_names_every_missing_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ECLIPSE_"))}
    result = subprocess.run(["bash", str(DEPLOY / "dagster-service.sh"), "daemon"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    for name in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_COMPUTE_LOGS_BUCKET", "ECLIPSE_REDIS_URL"):
        assert name in result.stderr


@pytest.mark.parametrize("name", sorted(DEPLOY_ENV) + ["DAGSTER_HOME", "ECLIPSE_DATABASE_URL", "ECLIPSE_REDIS_URL",
                                                      "ECLIPSE_S3_BUCKET", "AWS_ACCESS_KEY_ID"])
def test_the_environment_example_lists_every_variable(name):
    assert re.search(rf"^#? ?{name}=", (DEPLOY / "eclipse-exports.env.example").read_text(), re.M), name


def test_the_run_worker_autoscaler_watches_the_run_queue_the_launcher_fills():
    from eclipse_exports.launchers.celery import DEFAULT_QUEUE
    from eclipse_exports.queue.keys import run_worker_queue_key

    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "run-workers.yaml").read_text()))
    scaled = next(d for d in documents if d["kind"] == "ScaledObject")
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == run_worker_queue_key(DEFAULT_QUEUE)
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["eclipse-exports", "run-workers"]
    unit = (DEPLOY / "systemd" / "eclipse-exports-run-workers@.service").read_text()
    assert "dagster-service.sh run-workers" in unit and "KillSignal=SIGTERM" in unit
def test_every_file_the_deploy_comments_name_exists():
    texts = {path: path.read_text() for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.service"),
                                                 DEPLOY / "Dockerfile", *DEPLOY.glob("*.sh")]}
    for path, text in texts.items():
        for name in re.findall(r"(?<![\w/.-])((?:deploy|scripts|instance)/[\w./-]+\.(?:yaml|yml|sh|sql|example|json))",
                               text):
            assert (ROOT / name).exists(), f"{path.name} names {name}, which does not exist"
    assert "eclipse-exports.k8s.env" not in texts[DEPLOY / "helm" / "values.yaml"]


def test_each_unit_says_what_its_own_process_does():
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    heads = {name: text.split("[Unit]")[0] for name, text in units.items()}
    assert len(set(heads.values())) == len(heads), "two units share one comment"
    for name, word in (("code-server", "code server"), ("daemon", "daemon"), ("webserver", "webserver"),
                       ("metrics", "metrics")):
        assert word in heads[f"eclipse-exports-{name}.service"].lower(), name
    for name, text in units.items():
        assert "PrivateTmp=yes" in text and "UMask=0077" in text, name


def test_with_env_loads_the_file_literally(tmp_path):
    env_file = tmp_path / "eclipse-exports.env"
    url = "postgresql+psycopg2://u:p%40ss@db:5432/eclipse?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    env_file.write_text(f"# comment\n\nECLIPSE_DATABASE_URL={url}\nECLIPSE_S3_PREFIX=\n"
                        "DAGSTER_PG_PASSWORD=\"a $b `c`\"\n")
    result = subprocess.run([str(DEPLOY / "with-env"), str(env_file), "python3", "-c",
                             "import os, json; print(json.dumps({k: os.environ[k] for k in "
                             "('ECLIPSE_DATABASE_URL', 'ECLIPSE_S3_PREFIX', 'DAGSTER_PG_PASSWORD')}))"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout) == {"ECLIPSE_DATABASE_URL": url, "ECLIPSE_S3_PREFIX": "",
                                         "DAGSTER_PG_PASSWORD": "a $b `c`"}
    example = subprocess.run([str(DEPLOY / "with-env"), str(DEPLOY / "eclipse-exports.env.example"), "env"],
                             capture_output=True, text=True, timeout=30)
    assert example.returncode == 0 and "sslrootcert=/etc/eclipse-exports/eclipse-db-ca.pem" in example.stdout


def test_the_service_script_stages_compute_logs_and_temporary_files_owner_only():
    script = (DEPLOY / "dagster-service.sh").read_text()
    assert 'TMPDIR="$DAGSTER_HOME/tmp"' in script and "chmod 700" in script
    assert 'PGSSLMODE="${PGSSLMODE:-require}"' in script
