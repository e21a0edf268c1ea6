"""Start a real hubkit-singleuser server against a FakeHub (shared by the package tests)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from fakehub import FakeHub
from hubkit.testing.processes import free_port, retry_on_address_in_use


@dataclass
class Server:
    url: str  # http://127.0.0.1:port/user/alice/
    proc: subprocess.Popen[bytes]
    log: Path

    def logtext(self) -> str:
        return self.log.read_text(errors="replace")


def launch(
    hub: FakeHub,
    tmp: Path,
    *,
    app: str = "server",
    interval: str = "300",
    extra: dict[str, str] | None = None,
) -> Server:
    exe = shutil.which("hubkit-singleuser", path=os.path.dirname(sys.executable))
    assert exe, "hubkit-singleuser is not installed in this environment"
    log = tmp / "server.log"
    # the server binds the port in JUPYTERHUB_SERVICE_URL and cannot report one of its own choosing:
    # a port free a moment ago, and another one if a different program took it in between
    return retry_on_address_in_use(
        lambda: _launch(exe, hub, tmp, app=app, interval=interval, extra=extra, port=free_port()),
        lambda: log.read_text(errors="replace") if log.exists() else "",
    )


def _launch(
    exe: str, hub: FakeHub, tmp: Path, *, app: str, interval: str, extra: dict[str, str] | None, port: int
) -> Server:
    prefix = "/user/alice/"
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "HUBKIT_SINGLEUSER_APP": app,
        "JUPYTERHUB_API_TOKEN": hub.server_token,
        "JUPYTERHUB_CLIENT_ID": hub.client_id,
        "JUPYTERHUB_API_URL": f"{hub.url}/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": f"{hub.url}/hub/api/users/alice/activity",
        "JUPYTERHUB_ACTIVITY_INTERVAL": interval,
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_HOST": hub.url,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": hub.redirect_uri,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
            ["access:servers!server=alice/", "access:servers!user=alice"]
        ),
        **(extra or {}),
    }
    hub.server_origin = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    proc = subprocess.Popen(
        [exe, *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}{prefix}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "api", timeout=2).status_code < 500:
                return Server(url, proc, log)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"server did not answer within 60 s:\n{log.read_text()}")


def shutdown(server: Server) -> None:
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(server.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.proc.wait(5)
