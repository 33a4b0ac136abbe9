"""Credentials in the deployment's settings never reach what operators and users see.

An export run is materialized with real services whose settings carry secrets (a database password, a
Redis ACL password, the S3 secret key, all through the interface's environment variables as in production), and
every place a run leaves text is searched for them: the run's whole Dagster event log (messages, error infos,
stack traces, causes), its stored run record, materialization metadata, the job's Redis status hash and the
process output. Plus unit tests of :func:`eclipse_exports.config.redact`.
"""

import uuid
from collections.abc import Iterator

import pytest
import redis
from dagster import DagsterInstance, build_run_status_sensor_context, materialize
from dagster._serdes import serialize_value

from eclipse_exports.assets import EXPORT_ASSETS, ExportConfig
from eclipse_exports.config import known_secrets, redact
from eclipse_exports.models import ExportRequest
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.resources import RedisResource, default_resources
from eclipse_exports.sensors.run_failures import failure_cause

ALERTS = EXPORT_ASSETS[0]
DB_PASSWORD = "S3cr3tPassw0rd"
REDIS_PASSWORD = "R3disPassw0rdQ7"
AWS_SECRET = "AwsS3cr3tK3y/Zq+9xYvW"
SECRETS = (DB_PASSWORD, REDIS_PASSWORD, AWS_SECRET)


@pytest.fixture
def secret_redis_url(redis_url: str, redis_client: redis.Redis) -> Iterator[str]:
    """The test Redis reached through an ACL user whose password is a secret."""
    user = f"exporter_{uuid.uuid4().hex[:8]}"
    redis_client.execute_command("ACL", "SETUSER", user, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all")
    yield redis_url.replace("redis://", f"redis://{user}:{REDIS_PASSWORD}@", 1)
    redis_client.execute_command("ACL", "DELUSER", user)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("workspaces", ["ws_a"])
        yield inst


@pytest.fixture
def secret_env(monkeypatch, secret_redis_url, s3_endpoint, bucket):
    """docs/interface.md section 5 variables carrying credentials; resources read them as a deployment does."""
    monkeypatch.setenv("ECLIPSE_REDIS_URL", secret_redis_url)
    monkeypatch.setenv("ECLIPSE_S3_BUCKET", bucket)
    monkeypatch.setenv("ECLIPSE_S3_PREFIX", "tenant-files")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    return monkeypatch


def _run_config(job_id: str) -> dict:
    request = ExportRequest.from_payload(
        f'{{"id":"{job_id}","workspaceId":"ws_a","userId":"u_owner","resourceType":"alerts","format":"csv"}}')
    return {"ops": {"alerts_export": {"config": ExportConfig.from_request(request).model_dump()}}}


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _everything_the_run_left(instance: DagsterInstance, run_id: str, redis_client: redis.Redis,
                             job_id: str) -> dict[str, str]:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return {
        "event log": "\n".join(serialize_value(entry) for entry in instance.all_logs(run_id)),
        "run record": serialize_value(run),
        "status hash": repr(JobStatusStore(redis_client).get(job_id)),
    }


def test_failing_run_leaks_no_credential(instance, secret_env, redis_client, redis_url, capfd):
    secret_env.setenv("ECLIPSE_DATABASE_URL", f"postgresql+psycopg2://admin:{DB_PASSWORD}@127.0.0.1:1/eclipse")
    job_id = f"redact-fail-{uuid.uuid4().hex[:8]}"
    result = materialize([ALERTS], partition_key="ws_a", instance=instance, resources=default_resources(),
                         run_config=_run_config(job_id), tags={"eclipse/job_id": job_id}, raise_on_error=False)
    assert not result.success

    status = JobStatusStore(redis_client).get(job_id)
    assert status["status"] == "failed" and status["errorCode"] == "export_failed"
    # The secret-bearing URL really was used, and the cause is reported; only the secret is not.
    assert "OperationalError" in status["error"] and "port 1" in status["error"]
    kinds = [e.dagster_event.event_type_value for e in instance.all_logs(result.run_id) if e.dagster_event]
    # Three attempts (RetryPolicy max_retries=2), each leaving an error info with a stack trace.
    assert kinds.count("STEP_UP_FOR_RETRY") == 2 and kinds.count("STEP_FAILURE") == 1
    assert result.asset_materializations_for_node("alerts_export") == []

    places = _everything_the_run_left(instance, result.run_id, redis_client, job_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor_context = build_run_status_sensor_context(
        sensor_name="export_run_failure_sensor", dagster_event=failure, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), resources={"redis": RedisResource(url=redis_url)},
    ).for_run_failure()
    places["failure sensor cause"] = failure_cause(sensor_context)
    assert "OperationalError" in places["failure sensor cause"]
    for place, text in places.items():
        assert _leaks(text) == [], f"secret in the {place}"
    out, err = capfd.readouterr()
    assert _leaks(out + err) == [], "secret in the process output"


def test_successful_run_leaks_no_credential(instance, secret_env, redis_client, pg_engine, capfd):
    """Password in the database URL (trust auth ignores it), Redis ACL password and S3 secret, run succeeding."""
    url = pg_engine.url.set(password=DB_PASSWORD).render_as_string(hide_password=False)
    assert DB_PASSWORD in url
    secret_env.setenv("ECLIPSE_DATABASE_URL", url)
    job_id = f"redact-ok-{uuid.uuid4().hex[:8]}"
    result = materialize([ALERTS], partition_key="ws_a", instance=instance, resources=default_resources(),
                         run_config=_run_config(job_id), tags={"eclipse/job_id": job_id})
    assert result.success
    status = JobStatusStore(redis_client).get(job_id)
    assert status["status"] == "completed" and status["downloadUrl"].startswith("http")
    metadata = result.asset_materializations_for_node("alerts_export")[0].metadata
    places = _everything_the_run_left(instance, result.run_id, redis_client, job_id)
    places["materialization metadata"] = serialize_value(metadata)
    for place, text in places.items():
        assert _leaks(text) == [], f"secret in the {place}"
    out, err = capfd.readouterr()
    assert _leaks(out + err) == [], "secret in the process output"


# redact(): the masking every outgoing error message relies on.

@pytest.mark.parametrize("text, secret", [
    ("postgresql+psycopg2://admin:S3cr3tPassw0rd@127.0.0.1:1/db", "S3cr3tPassw0rd"),
    ("could not connect: postgresql://admin:S3cr3tPassw0rd@db.internal:5432/eclipse (timeout)", "S3cr3tPassw0rd"),
    ("redis://:R3disPassw0rd@cache:6379/0", "R3disPassw0rd"),
    ("rediss://exporter:R3disPassw0rd@cache:6380/0", "R3disPassw0rd"),
    ("smtp://mailer:M4ilPassw0rd@smtp.example:587", "M4ilPassw0rd"),
    ("two urls: redis://u:AAAApass1@h/0 and postgresql://v:BBBBpass2@h/db", "AAAApass1"),
    ("two urls: redis://u:AAAApass1@h/0 and postgresql://v:BBBBpass2@h/db", "BBBBpass2"),
    ("postgresql://admin:pa%2Fss%40w0rd@h/db", "pa%2Fss%40w0rd"),
    ("postgresql://admin:pa:ss:w0rd@h/db", "pa:ss:w0rd"),
    ("postgresql://admin:pa#ss?w0rd@h/db", "pa#ss?w0rd"),
    ("POSTGRESQL://Admin:UpperS3cret@h/db", "UpperS3cret"),
    ("url\npostgresql://admin:L1neS3cret@h/db\nnext line", "L1neS3cret"),
])
def test_redact_masks_url_credentials(text, secret):
    masked = redact(text)
    assert secret not in masked
    assert "***@" in masked


def test_redact_keeps_what_is_useful():
    assert redact("postgresql+psycopg2://admin:pw12345@db.internal:5432/eclipse") == \
        "postgresql+psycopg2://***@db.internal:5432/eclipse"
    assert redact("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact("sqlite:////var/lib/eclipse.db") == "sqlite:////var/lib/eclipse.db"
    assert redact("user@example.com wrote") == "user@example.com wrote"
    assert redact("") == ""


def test_redact_masks_given_secret_values_everywhere():
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    text = f"SignatureDoesNotMatch for key {secret}; again {secret}"
    assert redact(text, (secret,)) == "SignatureDoesNotMatch for key ***; again ***"
    assert redact("short abc", ("abc",)) == "short abc"  # too short to mask without wrecking the message
    assert redact("nothing", ("", "nothing-here")) == "nothing"


def test_known_secrets_reads_the_aws_secret_and_session_token():
    env = {"AWS_SECRET_ACCESS_KEY": "sk-value", "AWS_SESSION_TOKEN": "tok-value", "AWS_ACCESS_KEY_ID": "AKIA"}
    assert set(known_secrets(env)) == {"sk-value", "tok-value"}
    assert known_secrets({}) == ()


@pytest.mark.parametrize("text, secret", [
    ("postgresql+psycopg2://admin:Ab/Cd+Ef9@127.0.0.1:5432/eclipse", "Ab/Cd+Ef9"),
    ("postgresql+psycopg2://admin:pass word@127.0.0.1:5432/eclipse", "pass word"),
], ids=["slash", "space"])
def test_redact_masks_passwords_with_slash_or_space(text, secret):
    # A space ends a URL for the pattern; the configured URL's own password is masked by value.
    assert secret not in redact(text, known_secrets({"ECLIPSE_DATABASE_URL": text}))
    if " " not in secret:
        assert secret not in redact(text)


def test_redact_masks_a_password_containing_at_sign():
    assert "ssw0rd" not in redact("redis://:p@ssw0rd@cache:6379/0")


def test_redact_masks_password_query_parameter():
    assert "Qu3ryS3cret" not in redact("postgresql+psycopg2://db.internal/eclipse?user=admin&password=Qu3ryS3cret")
