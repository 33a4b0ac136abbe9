"""The run command's local deployment: one data folder, one copy, its own ports, an env file for other shells.

``eclipse-exports dev`` (in ``cli.py``) uses these pieces; none needs Dagster.

- :func:`lock_data_folder` takes an OS lock (``flock``) on ``{data}/dev.lock``
  for the life of the process, so a second ``dev`` on the same data folder is
  refused; the OS releases the lock when the process dies, however it dies.
- :func:`choose_port` gives a service its port: an explicit port must be free
  (``dev`` never reuses a server it did not start), a default one moves to the
  next free port when taken, and says so.

The env file other shells read is :mod:`eclipse_exports.local.env_file`.
"""

import fcntl
import os
from pathlib import Path
from typing import IO

from eclipse_exports.local.services import free_port, port_free

LOCK_FILE = "dev.lock"
DEFAULT_UI_PORT = 3000
DEFAULT_REDIS_PORT = 6380
DEFAULT_S3_PORT = 8333
DEFAULT_METRICS_PORT = 9464
PORTS_TRIED = 20


class DeploymentRefused(RuntimeError):
    """The run command cannot start as asked; ``str(exc)`` says why and what to do instead."""


def lock_data_folder(data_dir: Path) -> IO[str]:
    """Hold ``{data_dir}/dev.lock`` until the process ends; keep the returned file open.

    Raises :class:`DeploymentRefused` naming the holder's pid when another
    process holds it. The lock is the kernel's (``flock``), so it cannot go
    stale: it is gone as soon as its holder exits or is killed.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DeploymentRefused(
            f"another `eclipse-exports dev` (pid {holder}) is already running on the data folder {data_dir}; "
            "stop it first, or give this one its own folder (ECLIPSE_DATA_DIR=/some/other/folder)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def choose_port(service: str, explicit: int | None, preferred: int, host: str = "127.0.0.1",
                hint: str = "") -> tuple[int, str | None]:
    """The port ``service`` listens on, and a note when it is not the one asked for.

    ``explicit`` (a ``--…-port`` option) must be free, or :class:`DeploymentRefused`
    (with ``hint`` on how to use the server already there on purpose). Otherwise
    ``preferred`` or the next free port of the following 20, else any free port.
    """
    if explicit is not None:
        if not port_free(explicit, host):
            raise DeploymentRefused(
                f"port {explicit} for {service} is already in use by another program; `dev` starts its own "
                f"{service} and does not reuse a server it did not start. Choose another port{hint}.")
        return explicit, None
    for port in range(preferred, preferred + PORTS_TRIED):
        if port_free(port, host):
            return port, None if port == preferred else f"port {preferred} is taken, so {service} uses {port}"
    port = free_port()
    return port, f"ports {preferred}-{preferred + PORTS_TRIED - 1} are taken, so {service} uses {port}"
