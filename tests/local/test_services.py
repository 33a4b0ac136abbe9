"""The run command's own servers (Redis, SeaweedFS) end with it, however it ends, and say why they did not start."""

import signal
import subprocess
import sys
import time

import psutil
import pytest

from eclipse_exports.local.services import free_port, start_redis

START_BOTH = """
import sys, time
from pathlib import Path
from eclipse_exports.local.services import free_port, start_redis, start_seaweedfs
root = Path(sys.argv[1])
redis = start_redis(None, root / "redis", root / "redis.log")
s3 = start_seaweedfs(root / "s3", "b", "k", "secret-key", s3_port=free_port(), log_file=root / "s3.log")
print(redis.process.pid, s3.process.pid, flush=True)
time.sleep(600)
"""


def test_a_run_command_killed_with_sigkill_takes_its_redis_and_seaweedfs_with_it(tmp_path):
    """A ``kill -9`` of the run command's process group used to leave its servers running in their own sessions,
    holding the data folder's locks: the next start failed until they were found and killed by hand."""
    starter = subprocess.Popen([sys.executable, "-c", START_BOTH, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = starter.stdout.readline()
        assert line, "the servers did not start"
        servers = [psutil.Process(int(pid)) for pid in line.split()]
        assert all(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers)
        assert all(s.pid != starter.pid and s.ppid() == starter.pid for s in servers)
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    gone, alive = psutil.wait_procs(servers, timeout=30)
    for leftover in alive:
        leftover.kill()
    assert not alive, [(p.pid, p.name()) for p in alive]
    again = start_redis(None, tmp_path / "redis", tmp_path / "redis.log")  # the folder is free again
    again.stop()


def test_a_server_that_exits_at_start_says_why_from_its_log(tmp_path):
    """SeaweedFS failing on a locked store said only that its process exited; the cause was in its log."""
    data = tmp_path / "redis"
    (data / "appendonlydir").mkdir(parents=True)
    (data / "appendonlydir" / "appendonly.aof.manifest").write_text("not a manifest\n")
    started = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        start_redis(free_port(), data, tmp_path / "redis.log")
    assert f"the end of {tmp_path / 'redis.log'}" in str(info.value)
    assert "manifest" in str(info.value).lower(), str(info.value)
    assert time.monotonic() - started < 30
