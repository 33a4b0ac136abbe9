"""What ``eclipse-exports dev`` runs: its own Redis and SeaweedFS on free ports, the demo data, ``dagster dev``,
the Celery run workers and the Prometheus metrics endpoint, supervised until it stops.

:func:`run_dev` is the whole command without its command line: it takes the data folder's lock, chooses
ports, starts or finds Redis and S3, seeds the demo source database on first start, writes the env file
other shells read, runs ``dagster dev`` in the foreground and stops everything it started when that ends
(Ctrl-C, SIGTERM). Anything it cannot do as asked raises :class:`DeploymentRefused` with what to do
instead; progress goes to ``say`` (one line each). Nothing here imports Dagster: ``dagster dev`` is a
child process.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from eclipse_exports.config import Settings, SettingsError, redact
from eclipse_exports.local.deployment import (
    DEFAULT_METRICS_PORT,
    DEFAULT_REDIS_PORT,
    DEFAULT_S3_PORT,
    DEFAULT_UI_PORT,
    DeploymentRefused,
    choose_port,
    lock_data_folder,
)
from eclipse_exports.local.env_file import write_env_file
from eclipse_exports.local.run_workers import RunWorkerSupervisor
from eclipse_exports.local.services import PortTaken, Service, listens, port_open, start_redis, start_seaweedfs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_ACCESS_KEY, DEV_SECRET_KEY = "eclipse-dev", "eclipse-dev-secret"
Say = Callable[[str], None]


def ensure_redis(settings: Settings, redis_port: int | None, services: list[Service], ports: dict[str, int],
                 say: Say) -> str:
    """The Redis URL the deployment uses: the one the environment names, else a redis-server of our own."""
    explicit = os.environ.get("ECLIPSE_REDIS_URL")
    if explicit:
        if redis_port is not None:
            raise DeploymentRefused("give either ECLIPSE_REDIS_URL (a Redis to use) or --redis-port (where to start "
                                    "one), not both")
        parsed = urlparse(explicit)
        host, port = parsed.hostname or "localhost", parsed.port or 6379
        if port_open(host, port):
            say(f"redis: using the server at {host}:{port} (ECLIPSE_REDIS_URL)")
            return explicit
        if host not in ("localhost", "127.0.0.1"):
            raise DeploymentRefused(f"no Redis at {redact(explicit)} and it is not local, so none can be started")
    else:
        port, note = choose_port("Redis", redis_port, DEFAULT_REDIS_PORT,
                                 hint=" with --redis-port, or use that server on purpose with "
                                      "ECLIPSE_REDIS_URL=redis://127.0.0.1:PORT/0")
        if note:
            say(f"redis: {note}")
        explicit = f"redis://127.0.0.1:{port}/0"
    fixed = redis_port is not None or bool(os.environ.get("ECLIPSE_REDIS_URL"))  # a port the user named
    service = start_on_free_port(
        "Redis", port, fixed, lambda p: start_redis(p, settings.data_dir / "redis", settings.data_dir / "redis.log"),
        lambda: choose_port("Redis", None, DEFAULT_REDIS_PORT)[0], say)
    services.append(service)
    if service.ports["redis"] != port:
        port = service.ports["redis"]
        explicit = f"redis://127.0.0.1:{port}/0"
    ports["redis"] = port
    say(f"redis: started redis-server on 127.0.0.1:{port} (data in {settings.data_dir / 'redis'})")
    return explicit


def watch_ui_port(dagster: subprocess.Popen, host: str, port: int, timeout: float = 300.0,
                  grace: float = 15.0) -> None:
    """Return once ``dagster dev``'s webserver listens on ``port`` (or ``dagster`` exits, or ``timeout`` s pass).

    Raises :class:`DeploymentRefused` when another program holds the port for ``grace`` s while ours does not: a
    second copy started at the same moment took it, and `dagster dev` would run on with its webserver dead.
    """
    deadline, foreign_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline and dagster.poll() is None:
        if listens(dagster.pid, port):
            return
        if port_open(host, port):
            foreign_since = foreign_since or time.monotonic()
            if time.monotonic() - foreign_since > grace:
                raise DeploymentRefused(f"dagster: port {port} was taken by another program as the Dagster UI "
                                        "started; start again (a free port is chosen) or pass --port")
        time.sleep(0.5)


def start_on_free_port(service: str, port: int, explicit: bool, start: Callable[[int], Service],
                       choose: Callable[[], int], say: Say, attempts: int = 3) -> Service:
    """``start(port)``; when another program takes the port as the server starts (a second copy starting at the
    same moment), a chosen port moves to the next free one (up to ``attempts`` tries) and an explicit one raises
    :class:`DeploymentRefused`. Never reports a server as started on a port another program answers."""
    for attempt in range(attempts):
        try:
            return start(port)
        except PortTaken as exc:
            if explicit or attempt == attempts - 1:
                raise DeploymentRefused(f"{service}: {exc}; `dev` does not use a server it did not start. Choose "
                                        "another port.") from None
            taken, port = port, choose()
            say(f"{service.split()[0].lower()}: port {taken} was taken as it started, so {service} uses {port}")
    raise AssertionError("unreachable")


def ensure_s3(settings: Settings, s3_port: int | None, services: list[Service], ports: dict[str, int],
              say: Say) -> None:
    """Use the S3 endpoint the environment names, else start SeaweedFS; create the bucket either way."""
    from eclipse_exports.storage.client import storage_from_settings

    if settings.s3_endpoint_url is None:
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = DEV_ACCESS_KEY, DEV_SECRET_KEY
        os.environ.setdefault("AWS_REGION", "us-east-1")
        port, note = choose_port("S3 (SeaweedFS)", s3_port, DEFAULT_S3_PORT,
                                 hint=" with --s3-port, or use that endpoint on purpose with "
                                      "AWS_ENDPOINT_URL=http://127.0.0.1:PORT and its credentials")
        if note:
            say(f"s3: {note}")
        service = start_on_free_port(
            "S3 (SeaweedFS)", port, s3_port is not None,
            lambda p: start_seaweedfs(settings.data_dir / "seaweedfs", settings.s3_bucket,
                                      os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                                      s3_port=p, log_file=settings.data_dir / "seaweedfs.log"),
            lambda: choose_port("S3 (SeaweedFS)", None, DEFAULT_S3_PORT)[0], say)
        services.append(service)
        ports.update({f"seaweedfs {name}": p for name, p in service.ports.items()})
        os.environ["AWS_ENDPOINT_URL"] = service.url
        say(f"s3: started SeaweedFS, S3 API on {service.url} (data in {settings.data_dir / 'seaweedfs'}; "
            f"its other ports: {', '.join(f'{n} {p}' for n, p in service.ports.items() if n != 's3')})")
    elif s3_port is not None:
        raise DeploymentRefused("give either AWS_ENDPOINT_URL (an S3 to use) or --s3-port (where to start one), "
                                "not both")
    else:
        say(f"s3: using the endpoint at {settings.s3_endpoint_url} (AWS_ENDPOINT_URL)")
    settings = Settings.from_env()
    storage = storage_from_settings(settings)
    deadline = time.monotonic() + 60
    while True:
        try:
            storage.ensure_bucket()
            break
        except Exception as exc:  # noqa: BLE001 - the endpoint may still be starting
            if time.monotonic() > deadline:
                raise DeploymentRefused(f"S3 endpoint {settings.s3_endpoint_url} not ready: {exc}") from None
            time.sleep(0.5)
    say(f"s3: bucket '{settings.s3_bucket}' at {settings.s3_endpoint_url or 'AWS'}")


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of an SQLite database file (SQLite creates the file, not its folder)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def ensure_demo_data(settings: Settings, scale: str, say: Say) -> None:
    """Seed the source database with the demo data at ``scale`` unless it already has tables."""
    from sqlalchemy import inspect

    from eclipse_exports.source.demo_data import load_demo_data
    from eclipse_exports.source.engine import source_engine

    engine = source_engine(settings.database_url)
    ensure_sqlite_folder(settings.database_url)
    if inspect(engine).has_table("alerts"):
        say(f"source database: {redact(settings.database_url)} (already has data)")
        return
    counts = load_demo_data(engine, scale)
    say(f"source database: {redact(settings.database_url)} seeded with {counts['alerts']:,} alerts")


def start_metrics(say: Say) -> tuple[subprocess.Popen, int]:
    """``eclipse-exports metrics --serve`` on 127.0.0.1, port 9464 or the next free one; sets
    ``ECLIPSE_METRICS_URL`` (written to the env file) and says where."""
    port, note = choose_port("the Prometheus metrics", None, DEFAULT_METRICS_PORT)
    if note:
        say(f"metrics: {note}")
    process = subprocess.Popen([str(Path(sys.executable).parent / "eclipse-exports"), "metrics", "--serve",
                                "--port", str(port)], cwd=PROJECT_ROOT, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.environ["ECLIPSE_METRICS_URL"] = f"http://127.0.0.1:{port}/metrics"
    say(f"metrics: Prometheus metrics on {os.environ['ECLIPSE_METRICS_URL']} (`curl \"$ECLIPSE_METRICS_URL\"`)")
    return process, port


def check_code_location() -> None:
    """Load the code location here first, as the code server will: a setting it refuses (a bad cron, say) stops
    ``dev`` with one line instead of a UI that shows a broken location. Raises :class:`DeploymentRefused`."""
    try:
        with warnings.catch_warnings():  # Dagster's beta/preview notes belong to the code server's log
            warnings.simplefilter("ignore")
            import eclipse_exports.definitions  # noqa: F401 - loading it is the check
    except (ValueError, SettingsError) as exc:
        raise DeploymentRefused(f"the code location does not load: {exc}") from None


def run_dev(port: int | None, host: str, redis_port: int | None, s3_port: int | None, scale: str,
            say: Say, run_workers: int = 4) -> None:
    """Start Redis, S3 and demo data as needed, a group of ``run_workers`` Celery run workers (none for 0), then
    ``dagster dev`` in the foreground until it stops.

    Returns when ``dagster dev`` exits (Ctrl-C, SIGTERM, a crash), after stopping every server it started.
    Raises :class:`DeploymentRefused` when the data folder is taken, a named port is busy, or a named
    service cannot be used.
    """
    # `kill -INT` (docs/local.md) and Ctrl-C stop the run command however it was started: a background job of a
    # non-interactive shell (`eclipse-exports dev &` in a script) inherits SIGINT ignored, and Python then installs
    # no handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = Settings.from_env()
    check_code_location()
    lock = lock_data_folder(settings.data_dir)  # noqa: F841 - held open for the life of the process
    ui_port, ui_note = choose_port("the Dagster UI", port, DEFAULT_UI_PORT, host=host, hint=" with --port")
    os.environ["ECLIPSE_DATA_DIR"] = str(settings.data_dir)
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    # Temporary files of dagster dev, its runs and the servers go to an owner-only folder of the data folder.
    temporary = settings.data_dir / "tmp"
    temporary.mkdir(mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = str(temporary)
    services: list[Service] = []
    ports: dict[str, int] = {"dagster UI": ui_port}
    dagster: subprocess.Popen | None = None
    metrics: subprocess.Popen | None = None
    workers: RunWorkerSupervisor | None = None
    try:
        os.environ["ECLIPSE_REDIS_URL"] = ensure_redis(settings, redis_port, services, ports, say)
        ensure_s3(settings, s3_port, services, ports, say)
        settings = Settings.from_env()
        ensure_demo_data(settings, scale, say)
        ui_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{ui_port}"
        os.environ["ECLIPSE_DAGSTER_URL"] = ui_url
        metrics, ports["prometheus metrics"] = start_metrics(say)
        if run_workers:
            workers = RunWorkerSupervisor(run_workers, os.environ["ECLIPSE_REDIS_URL"],
                                          settings.data_dir / "run-workers.log", say)
            workers.start()
        written = write_env_file(settings.data_dir, os.environ, ports)
        if ui_note:
            say(f"dagster: {ui_note}")
        say(f"dagster: UI on {ui_url} (DAGSTER_HOME={dagster_home})")
        say(f"\nIn another shell: `source {written}` (the CLI in this folder reads it by itself), then\n"
            f"  eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts "
            f"--format csv\n")
        command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                   "-h", host, "-p", str(ui_port)]
        # A background shell starts us with SIGINT ignored, which children inherit; dagster dev shuts
        # down cleanly only on SIGINT, so give it the default handler back.
        dagster = subprocess.Popen(command, cwd=PROJECT_ROOT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        signal.signal(signal.SIGTERM, lambda *_: dagster.send_signal(signal.SIGINT))
        watch_ui_port(dagster, "127.0.0.1" if host in ("0.0.0.0", "::") else host, ui_port)
        while dagster.poll() is None:
            if workers is not None:
                workers.check()
            time.sleep(2)
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches dagster too (one process group): let it stop by itself. A `kill -INT`
        # of this process alone does not; after a short wait the `finally` below passes the signal on.
        if dagster is not None:
            try:
                dagster.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if workers is not None:
            workers.terminate()  # the group's warm shutdown runs while dagster stops, not after it
        if dagster is not None and dagster.poll() is None:
            dagster.send_signal(signal.SIGINT)
            try:
                dagster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dagster.kill()
        if workers is not None:
            workers.stop()
        if metrics is not None and metrics.poll() is None:
            metrics.terminate()
            metrics.wait(timeout=30)
        for service in reversed(services):
            service.stop()
