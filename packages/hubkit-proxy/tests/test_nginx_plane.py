"""Experimental nginx data plane: routes changed through hubkit-proxy's API are served by a real nginx."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ADDRESS_IN_USE, Backend, ProxyProc, free_port, make_proxy, require
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MAIN = """daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/routes.conf;
}}
"""


@pytest.fixture
def nginx_dir(tmp_path: Path) -> Iterator[Path]:
    require(Path(NGINX).exists(), "nginx is not installed (apt-get install nginx)")
    os.chmod(tmp_path, 0o755)
    yield tmp_path
    pid = tmp_path / "nginx.pid"
    if pid.exists():
        try:
            os.kill(int(pid.read_text()), signal.SIGQUIT)
        except (ProcessLookupError, ValueError):
            pass


def start_nginx(d: Path, port: int) -> subprocess.Popen[bytes]:
    (d / "nginx.conf").write_text(MAIN.format(d=d))
    with open(d / "stderr.log", "wb") as err:  # startup errors (bad config, port taken) go to stderr
        proc = subprocess.Popen([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d)], stderr=err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((d / "stderr.log").read_text())
        try:
            httpx.get(f"http://127.0.0.1:{port}/_chp_healthz", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen")


async def wait_status(url: str, status: int, seconds: float = 10) -> httpx.Response:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as c:
        while True:
            r = await c.get(url)
            if r.status_code == status or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.05)


async def test_routes_through_the_api_are_served_by_nginx(
    backend: Backend, nginx_dir: Path, proxy_factory: list[ProxyProc]
) -> None:
    routes = nginx_dir / "routes.conf"
    # nginx cannot report a port of its own choosing: a port free a moment ago, again if it was taken
    for _attempt in range(5):
        port = free_port()
        p = make_proxy(
            "hubkit",
            "--nginx-routes",
            str(routes),
            "--nginx-pid",
            str(nginx_dir / "nginx.pid"),
            "--nginx-listen",
            f"127.0.0.1:{port}",
        )
        p.env["HUBKIT_PROXY_HUB_MARK"] = "nginx-m4rk"
        p.start()
        proxy_factory.append(p)
        try:
            nginx = start_nginx(nginx_dir, port)
            break
        except RuntimeError as exc:
            p.kill()
            if ADDRESS_IN_USE not in str(exc).lower():
                raise
    else:
        raise AssertionError("nginx never got a port")
    try:
        plane = f"http://127.0.0.1:{port}"
        assert (await wait_status(plane + "/user/alice/x", 404)).status_code == 404
        async with httpx.AsyncClient(headers=p.auth) as c:
            body = {"target": backend.url + "/base", "jupyterhub": True}
            assert (await c.post(p.api_url + "/api/routes/user/alice", json=body)).status_code == 201
            bob = {"target": backend.url, "jupyterhub": True}
            assert (await c.post(p.api_url + "/api/routes/user/bob", json=bob)).status_code == 201
        r = await wait_status(plane + "/user/alice/lab?x=1", 200)
        assert r.status_code == 200 and r.json()["path"] == "/base/user/alice/lab?x=1"
        assert (await wait_status(plane + "/user/alicex", 404)).status_code == 404  # segment boundaries
        assert (await wait_status(plane + "/user/bob/x", 200)).status_code == 200
        async with connect(f"ws://127.0.0.1:{port}/user/bob/ws") as ws:
            await ws.send("through nginx")
            assert await ws.recv() == "through nginx"
        async with httpx.AsyncClient(headers=p.auth) as c:
            assert (await c.delete(p.api_url + "/api/routes/user/alice")).status_code == 204
        assert (await wait_status(plane + "/user/alice/x", 404)).status_code == 404
        # the hub's route "/" alone gets the mark; what a client sends under that name never passes
        async with httpx.AsyncClient(headers=p.auth) as c:
            hub = {"target": backend.url, "jupyterhub": True}
            assert (await c.post(p.api_url + "/api/routes/", json=hub)).status_code == 201
        forged = {"X-Hubkit-Forwarded": "forged"}
        r = await wait_status(plane + "/hub/x", 200)
        async with httpx.AsyncClient(headers=forged) as c:
            to_hub = (await c.get(plane + "/hub/x")).json()["headers"]
            to_bob = (await c.get(plane + "/user/bob/x")).json()["headers"]
        assert {k.lower(): v for k, v in to_hub.items()}.get("x-hubkit-forwarded") == "nginx-m4rk"
        assert "x-hubkit-forwarded" not in {k.lower() for k in to_bob}
        assert oct(routes.stat().st_mode & 0o777) == oct(0o600)  # the include holds the mark
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
