"""The server process's environment and command line (single-user contract, compat section A1/A2)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence

from hubkit.errors import SpawnFailed
from hubkit.interfaces import ServerSpec

from .accounts import Account

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build_env(
    spec: ServerSpec,
    account: Account,
    home: str,
    port: int,
    env_keep: Sequence[str],
    source: Mapping[str, str],
) -> dict[str, str]:
    """env_keep from the hub, then the account's basics, then the core's contract vars, then the bind URL."""
    env = {k: source[k] for k in env_keep if k in source}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({"USER": account.name, "LOGNAME": account.name, "HOME": home, "SHELL": account.shell})
    env.update(spec.env_with_url("127.0.0.1", port))
    env.setdefault("JUPYTERHUB_SERVICE_PREFIX", spec.url_prefix)
    env.setdefault("JUPYTERHUB_API_URL", spec.hub_api_url)
    if spec.api_token:
        env.setdefault("JUPYTERHUB_API_TOKEN", spec.api_token)
    return env


def build_cmd(
    cmd: Sequence[str], args: Sequence[str], env: Mapping[str, str], *, as_root: bool, allow_root: bool
) -> list[str]:
    """Resolve the program (PATH, then the hub's own bin dir, so an un-activated venv works) and add args."""
    if not cmd:
        raise SpawnFailed("no server command configured", reason_code="command-not-found")
    program = cmd[0]
    if os.sep not in program:
        search = os.pathsep.join([env.get("PATH", DEFAULT_PATH), os.path.dirname(sys.executable)])
        found = shutil.which(program, path=search)
        if found is None:
            raise SpawnFailed(
                f"server command {program!r} not found on PATH ({search}); install it (e.g. "
                "`pip install hubkit-singleuser`) or set [spawner] cmd",
                reason_code="command-not-found",
            )
        program = found
    elif not os.access(program, os.X_OK):
        raise SpawnFailed(
            f"server command {program!r} is not an executable file", reason_code="command-not-found"
        )
    full = [program, *cmd[1:], *args]
    if as_root and allow_root and "--allow-root" not in full:
        full.append("--allow-root")
    return full
