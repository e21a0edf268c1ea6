"""The hub's REST API from a test: a token via ``hubkit token``, start a server and wait until it is ready."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from .hubproc import VENV_BIN, HubProcess


def user_token(hub: HubProcess, user: str) -> str:
    """``hubkit -f CONFIG token USER --create``: what an admin runs on the VM."""
    proc = subprocess.run(
        [str(VENV_BIN / "hubkit"), "-f", str(hub.write_config()), "token", user, "--create"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=hub.workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def api(hub: HubProcess, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{hub.url}/hub/api", headers={"Authorization": f"token {token}"}, timeout=30, verify=False
    )


def start_server(hub: HubProcess, user: str, token: str, timeout: float = 120) -> dict[str, Any]:
    with api(hub, token) as c:
        r = c.post(f"/users/{user}/server")
        assert r.status_code in (201, 202), (r.status_code, r.text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = c.get(f"/users/{user}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return dict(server)
            time.sleep(0.5)
    raise TimeoutError(f"{user}'s server not ready after {timeout}s:\n{hub.log()[-3000:]}")


def user_pids(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
