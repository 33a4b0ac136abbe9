"""The run command's env file, ``{data}/env.sh``: ``export`` lines a second shell ``source``s to talk to the
running product (the CLI, ``redis-cli``, the benchmarks), with every port the deployment opened in a comment.

:func:`write_env_file` writes it when ``dev`` starts; :func:`apply_env_file` is how the CLI reads it by itself.
Standard library only, so every CLI command can read it at no start-up cost.
"""

import shlex
from collections.abc import MutableMapping
from pathlib import Path

ENV_FILE = "env.sh"
ENV_VARIABLES = ("ECLIPSE_DATA_DIR", "ECLIPSE_DATABASE_URL", "ECLIPSE_REDIS_URL", "ECLIPSE_S3_BUCKET",
                 "ECLIPSE_S3_PREFIX", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                 "DAGSTER_HOME", "ECLIPSE_DAGSTER_URL", "ECLIPSE_METRICS_URL")


def env_file(data_dir: Path) -> Path:
    """``{data_dir}/env.sh``."""
    return data_dir / ENV_FILE


def write_env_file(data_dir: Path, environ: MutableMapping[str, str], ports: dict[str, int]) -> Path:
    """Write the deployment's settings (``ENV_VARIABLES`` present in ``environ``) as ``export`` lines.

    ``ports`` (name → port) become a comment listing everything the
    deployment listens on. The file holds the local S3 keys, so only its
    owner may read it.
    """
    path = env_file(data_dir)
    lines = ["# Written by `eclipse-exports dev`; `source` it in another shell to talk to the running product.",
             "# Ports of this deployment (all on 127.0.0.1 unless the UI host says otherwise):",
             *(f"#   {name}: {port}" for name, port in ports.items())]
    lines += [f"export {name}={shlex.quote(environ[name])}" for name in ENV_VARIABLES if environ.get(name)]
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_env_file(data_dir: Path) -> dict[str, str]:
    """The ``export NAME=value`` settings of ``{data_dir}/env.sh``; ``{}`` when there is none."""
    path = env_file(data_dir)
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


def apply_env_file(environ: MutableMapping[str, str], data_dir: Path) -> dict[str, str]:
    """Fill in the env file's settings that ``environ`` does not set itself; returns those applied.

    What the shell sets wins, so ``ECLIPSE_REDIS_URL=… eclipse-exports jobs`` still talks to that Redis.
    """
    applied = {name: value for name, value in read_env_file(data_dir).items() if not environ.get(name)}
    environ.update(applied)
    return applied
