"""The reference: JupyterHub 6.1.1 + configurable-http-proxy + its local process spawner, run for real."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
CONFIG = """
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.authenticator_class = "dummy"
# the local process spawner, as the hub's own OS user (the same mode as hubkit's demo)
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = {cmd!r}
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.JupyterHub.db_url = "sqlite:///{data}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{data}/jupyterhub_cookie_secret"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers"], "services": ["bench"]}}]
c.JupyterHub.cleanup_servers = True
"""


class JupyterHub:
    def __init__(self, data: Path, chp: str, ports: tuple[int, int, int]) -> None:
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.port, hub_port, api_port = ports
        self.token = secrets.token_hex(16)
        args = ["--allow-root"] if os.geteuid() == 0 else []
        (data / "jupyterhub_config.py").write_text(
            CONFIG.format(
                port=self.port,
                hub_port=hub_port,
                api_port=api_port,
                chp=chp,
                data=data,
                token=self.token,
                cmd=[str(BIN / "jupyterhub-singleuser")],
                args=args,
            )
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.proc = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(self.data / "jupyterhub_config.py")],
            cwd=self.data,
            env=env,
            stdout=(self.data / "jupyterhub.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data / "jupyterhub.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("JupyterHub did not start")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/hub/api", headers={"Authorization": f"token {self.token}"}, timeout=60
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
