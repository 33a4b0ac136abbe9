"""The run command on a shared machine: one copy per data folder, its own ports, an env file for other shells."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eclipse_exports.local.deployment import DeploymentRefused, choose_port, lock_data_folder
from eclipse_exports.local.env_file import apply_env_file, read_env_file, write_env_file
from eclipse_exports.local.services import free_port, port_free

EXPORTS = Path(sys.executable).parent / "eclipse-exports"
HOLD_LOCK = "import sys, time; from pathlib import Path; from eclipse_exports.local.deployment import " \
            "lock_data_folder; held = lock_data_folder(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"


@pytest.fixture
def listener():
    """Something else listening on a port, as another program would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_second_process_cannot_take_the_data_folder_until_the_first_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DeploymentRefused, match=rf"\(pid {holder.pid}\) is already running on the data folder"):
            lock_data_folder(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the lock with its holder: no stale lock file to clean up by hand.
    lock_data_folder(tmp_path).close()


def test_dev_refuses_explicit_ports_that_are_taken(tmp_path, listener):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECLIPSE_", "AWS_ENDPOINT"))}
    env["ECLIPSE_DATA_DIR"] = str(tmp_path)
    for option in ("--redis-port", "--port"):
        started = time.monotonic()
        result = subprocess.run([str(EXPORTS), "dev", option, str(listener)], env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert f"port {listener} for" in result.stderr and "already in use by another program" in result.stderr
        assert "does not reuse a server it did not start" in result.stderr
        assert time.monotonic() - started < 60
    env["ECLIPSE_REDIS_URL"] = "redis://127.0.0.1:1/0"
    both = subprocess.run([str(EXPORTS), "dev", "--redis-port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=120)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_taken_default_port_moves_to_the_next_free_one_and_says_so(listener):
    port, note = choose_port("Redis", None, listener)
    assert port != listener and note == f"port {listener} is taken, so Redis uses {port}"
    assert choose_port("Redis", None, port) == (port, None)


def test_a_port_whose_server_just_stopped_is_free_despite_its_time_wait_connections():
    """A restart right after a stop keeps its ports: the old server's connections in TIME-WAIT do not count."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server's side closes first, so its end stays in TIME-WAIT on the port
    client.recv(1)
    client.close()
    server.close()
    local = f"0100007F:{port:04X}"  # 127.0.0.1:port as /proc/net/tcp writes it; state 06 is TIME-WAIT
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    assert any(f[1] == local and f[3] == "06" for f in (line.split() for line in lines)), lines
    assert port_free(port) and choose_port("Redis", None, port) == (port, None)


def test_the_env_file_round_trips_and_the_shell_wins(tmp_path):
    environ = {"ECLIPSE_REDIS_URL": "redis://:p@ss w'ord@127.0.0.1:6380/0", "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
               "UNRELATED": "x"}
    path = write_env_file(tmp_path, environ, {"dagster UI": 3000, "redis": 6380})
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "#   redis: 6380" in path.read_text() and "UNRELATED" not in path.read_text()
    assert read_env_file(tmp_path) == {k: v for k, v in environ.items() if k != "UNRELATED"}
    shell = {"AWS_ENDPOINT_URL": "http://mine:9000"}
    assert apply_env_file(shell, tmp_path) == {"ECLIPSE_REDIS_URL": environ["ECLIPSE_REDIS_URL"]}
    assert shell["AWS_ENDPOINT_URL"] == "http://mine:9000"
    sourced = subprocess.run(["bash", "-c", f"source {path} && printf %s \"$ECLIPSE_REDIS_URL\""],
                             capture_output=True, text=True, check=True)
    assert sourced.stdout == environ["ECLIPSE_REDIS_URL"]


def test_a_server_that_loses_its_port_to_another_program_is_not_taken_for_started(tmp_path, listener):
    """Two copies starting at once: the port was free when chosen, another program bound it first. A real
    redis-server on that port exits ("Address already in use"): that is PortTaken, never "started"."""
    from eclipse_exports.local.services import PortTaken, start_redis

    with pytest.raises(PortTaken, match=f"port {listener} was taken by another program"):
        start_redis(listener, tmp_path / "redis", tmp_path / "redis.log")
    assert "Address already in use" in (tmp_path / "redis.log").read_text()


def test_dev_stops_when_another_program_holds_the_ui_port_its_webserver_needs(listener):
    """`dagster dev` runs on with its webserver dead when the UI port is taken under it: dev must stop, saying so."""
    from eclipse_exports.local.runtime import watch_ui_port

    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a dev whose UI never binds
    try:
        started = time.monotonic()
        with pytest.raises(DeploymentRefused, match=f"port {listener} was taken by another program as the Dagster UI"):
            watch_ui_port(stand_in, "127.0.0.1", listener, timeout=30, grace=1)
        assert time.monotonic() - started < 10
    finally:
        stand_in.kill()
        stand_in.wait()


def test_the_ui_watch_returns_once_our_own_process_listens():
    from eclipse_exports.local.runtime import watch_ui_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        watch_ui_port(server, "127.0.0.1", port, timeout=60, grace=1)
        assert server.poll() is None and time.monotonic() - started < 20  # at once, not at the timeout
    finally:
        server.kill()
        server.wait()
