"""Helpers for tests that run the real ``hubkit`` CLI as a process (restart, kill -9, re-adoption)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hub_cli(
    config: Path, log: Path, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``hubkit -f config`` writing to ``log``; returns the process and its monotonic start time."""
    t0 = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubkit.cli", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    return proc, t0


def wait_health(url: str, proc: subprocess.Popen[bytes], t0: float, limit: float = 30) -> float:
    """Seconds from ``t0`` until ``url`` answers 200; fails if the process exits first."""
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, "the hub exited"
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} never answered")


def wait_log(log: Path, needle: str, limit: float = 30) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in hub log:\n{log.read_text(errors='replace')[-3000:]}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def machine_is_overloaded() -> bool:
    """Load average above twice the CPU count: wall-clock checks would measure the neighbours."""
    return os.getloadavg()[0] > 2 * (os.cpu_count() or 1)


def cli_token(config: Path, user: str, env: Mapping[str, str] | None = None) -> str:
    """An API token for ``user`` from ``hubkit -f config token USER`` (the user must exist or be an admin)."""
    return subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), "token", user],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def hub_api(port: int, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    """One request to ``http://127.0.0.1:<port>/hub/api<path>`` with ``Authorization: token``."""
    return httpx.request(
        method,
        f"http://127.0.0.1:{port}/hub/api{path}",
        json=body,
        timeout=30,
        headers={"Authorization": f"token {token}"},
    )
