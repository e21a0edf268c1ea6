"""A stock JupyterHub (from PyPI) configured to launch hubkit-proxy instead of CHP serves a user's server."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from conftest import free_port, hubkit_proxy_cmd, require
from hubkit.testing.processes import answers, retry_on_address_in_use

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = {command!r}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = "{tmp}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "tester", "scopes": ["admin:users", "admin:servers", "access:servers"],
                             "services": ["tester"]}}]
"""


def test_stock_jupyterhub_with_hubkit_proxy(tmp_path: Path) -> None:
    jh = shutil.which("jupyterhub", path=os.path.dirname(sys.executable))
    singleuser = shutil.which("jupyterhub-singleuser", path=os.path.dirname(sys.executable))
    require(jh is not None and singleuser is not None, "jupyterhub is not installed in this venv")
    token = secrets.token_hex(16)
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16))
    started: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}

    def start() -> None:
        """JupyterHub cannot report ports of its own choosing: ports free a moment ago (retried if taken)."""
        if started:
            _stop(started.pop())
        ports.update(port=free_port(), hub_port=free_port(), api_port=free_port())
        (tmp_path / "jupyterhub_config.py").write_text(
            CONFIG.format(
                **ports, tmp=tmp_path, command=hubkit_proxy_cmd(), singleuser=singleuser, token=token
            )
        )
        with open(tmp_path / "hub.log", "wb") as log:
            started.append(
                subprocess.Popen(
                    [str(jh), "-f", "jupyterhub_config.py"],
                    cwd=tmp_path,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        while not answers(f"http://127.0.0.1:{ports['port']}/hub/api"):
            assert started[0].poll() is None, (tmp_path / "hub.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "hub did not come up behind hubkit-proxy"
            time.sleep(0.2)

    try:
        retry_on_address_in_use(start, lambda: (tmp_path / "hub.log").read_text(errors="replace"))
        port, api_port = ports["port"], ports["api_port"]
        public = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"token {token}"}
        with httpx.Client(timeout=60) as c:
            # the proxy JupyterHub launched really is hubkit-proxy
            assert (
                "x-hubkit-proxy-instance"
                in c.get(
                    f"http://127.0.0.1:{api_port}/api/routes",
                    headers={"Authorization": f"token {env['CONFIGPROXY_AUTH_TOKEN']}"},
                ).headers
            )
            assert c.post(public + "/hub/api/users/alice", headers=auth).status_code in (201, 409)
            assert c.post(public + "/hub/api/users/alice/server", headers=auth).status_code in (201, 202)
            deadline = time.monotonic() + 90
            while True:
                user = c.get(public + "/hub/api/users/alice", headers=auth).json()
                if user["servers"].get("", {}).get("ready"):
                    break
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()[-3000:]
                time.sleep(0.5)
            routes = c.get(
                f"http://127.0.0.1:{api_port}/api/routes",
                headers={"Authorization": f"token {env['CONFIGPROXY_AUTH_TOKEN']}"},
            ).json()
            assert routes["/user/alice"]["user"] == "alice" and routes["/user/alice"]["jupyterhub"] is True
            r = c.get(public + "/user/alice/api/status", headers=auth)
            assert r.status_code == 200, r.text
            assert "started" in r.json()
            assert "x-jupyterhub-version" in r.headers
            # a kernel websocket through the proxy
            kernel = c.post(public + "/user/alice/api/kernels", headers=auth, json={}).json()
            ws_url = f"ws://127.0.0.1:{port}/user/alice/api/kernels/{kernel['id']}/channels"
            assert _ws_roundtrip(ws_url, auth)
            # stopping the server removes its route; the path then lands on the hub
            assert c.delete(public + "/hub/api/users/alice/server", headers=auth).status_code in (202, 204)
            deadline = time.monotonic() + 30
            while (
                "/user/alice"
                in c.get(
                    f"http://127.0.0.1:{api_port}/api/routes",
                    headers={"Authorization": f"token {env['CONFIGPROXY_AUTH_TOKEN']}"},
                ).json()
            ):
                assert time.monotonic() < deadline
                time.sleep(0.3)
            r = c.get(public + "/user/alice/api/status", headers=auth, follow_redirects=False)
            assert r.status_code in (302, 303, 404, 424, 503)
    finally:
        for hub in started:
            _stop(hub)
        pid_file = tmp_path / "proxy.pid"
        if pid_file.exists():  # JupyterHub stops its proxy on exit; make sure
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def _stop(hub: subprocess.Popen[bytes]) -> None:
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(hub.pid, signal.SIGKILL)
        hub.wait(5)


def _ws_roundtrip(url: str, headers: dict[str, str]) -> bool:
    import asyncio
    import json
    import uuid

    async def go() -> bool:
        async with websockets.connect(url, additional_headers=headers) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send(
                json.dumps(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "kernel_info_request",
                            "username": "t",
                            "session": "s",
                            "version": "5.3",
                            "date": "",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "content": {},
                        "channel": "shell",
                    }
                )
            )
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if (
                    reply.get("parent_header", {}).get("msg_id") == msg_id
                    and reply["msg_type"] == "kernel_info_reply"
                ):
                    return True

    return asyncio.run(go())
