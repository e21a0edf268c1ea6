"""The app is plain ASGI: the same flow works under uvicorn and under hypercorn (real sockets). The documented
entry points build the hub from a config file and serve it: ``hubkit.asgi:create_app`` under uvicorn and
hypercorn, ``hubkit.wsgi:create_app`` under gunicorn (a real WSGI server, through a2wsgi). Each runs the same
flow: create a user, start a server, follow its progress stream to ``ready``, stop it, show the login page.
Servers listen on sockets bound to port 0 by the test and handed over, so no port is raced for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing import require

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
ENV = {"HUBKIT_PLUGINS": ""}  # the core alone


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hubkit.toml"
    path.write_text(
        f'[hub]\ndata_dir = "{tmp_path / "data"}"\nadmin_users = ["boss"]\n'
        '[spawner.stand-in]\nstart_delay = 0.3\n[culler]\nenabled = true\nevery = 3600\n'
    )
    return path


def admin_token(config: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "hubkit.cli", "-f", str(config), "token", "--create", "boss"],
        capture_output=True, text=True, timeout=60, check=True, env={**os.environ, **ENV},
    ).stdout.strip()


def listening_socket() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


async def flow(base: str, token: str) -> None:
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
        r = await c.get("/hub/api")
        assert r.json()["version"] == "6.1.1" and r.headers["x-jupyterhub-version"] == "6.1.1"
        assert (await c.post("/hub/api/users/alice")).status_code == 201
        r = await c.post("/hub/api/users/alice/server", json={"user_options": {}})
        assert r.status_code in (201, 202)
        events = []
        async with c.stream("GET", "/hub/api/users/alice/server/progress") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert events[-1]["ready"] is True
        assert (await c.delete("/hub/api/users/alice/server")).status_code == 204
    async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
        page = await browser.get("/hub/login")
        assert page.status_code == 200 and "<form" in page.text


@asynccontextmanager
async def uvicorn_serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def hypercorn_serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    cfg = Config()
    cfg.bind = [f"fd://{sock.fileno()}"]
    cfg.loglevel = "WARNING"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, cfg, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    port = sock.getsockname()[1]
    async with httpx.AsyncClient() as c:
        for _ in range(500):
            try:
                if (await c.get(f"http://127.0.0.1:{port}/hub/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.02)
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("serving", [uvicorn_serving, hypercorn_serving], ids=["uvicorn", "hypercorn"])
async def test_asgi_entry_point(config: Path, serving: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hubkit.asgi import create_app

    monkeypatch.setenv("HUBKIT_PLUGINS", "")
    token = admin_token(config)
    app = create_app(str(config))
    sock = listening_socket()
    try:
        async with serving(app, sock):
            await flow(f"http://127.0.0.1:{sock.getsockname()[1]}", token)
    finally:
        with contextlib.suppress(OSError):  # hypercorn closes the socket it was handed
            sock.close()
    assert app.hub is not None and not app.hub.started  # stopped at lifespan shutdown


def serve_in_process(program: str, args: list[str], config: Path, log_path: Path) -> tuple[Any, str]:
    """Run an installed server program (``{fd}`` in ``args``: a listening socket handed over), wait until the hub
    answers; returns the process and its base URL."""
    exe = shutil.which(program, path=os.path.dirname(sys.executable))
    require(exe is not None, f"{program} not installed")
    assert exe is not None
    with listening_socket() as sock, log_path.open("ab") as log:
        proc = subprocess.Popen(
            [exe, *(a.format(fd=sock.fileno()) for a in args)],
            env={**os.environ, **ENV, "HUBKIT_CONFIG": str(config)},
            pass_fds=[sock.fileno()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(log_path.read_text())
        try:
            if httpx.get(f"{base}/hub/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError(log_path.read_text())
        time.sleep(0.05)


def test_shutdown_api_ends_an_asgi_server_process(config: Path, tmp_path: Path) -> None:
    """``POST /hub/api/shutdown`` under a server the hub does not own (uvicorn's CLI): SIGTERM to itself, so the
    server stops gracefully and runs the lifespan shutdown (the hub stops), as on a `kill`."""
    token = admin_token(config)
    log_path = tmp_path / "uvicorn.log"
    proc, base = serve_in_process("uvicorn", ["--factory", "hubkit.asgi:create_app", "--fd", "{fd}"], config, log_path)
    try:
        r = httpx.post(f"{base}/hub/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=30)
        assert r.status_code == 202 and r.json() == {"message": "Shutting down Hub"}
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly, as after any `kill`
        assert proc.wait(30) in (0, -signal.SIGTERM), log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log_path.read_text()
    assert "shutdown requested through the API" in text and "Application shutdown complete" in text, text
    assert "Traceback" not in text, text


def test_wsgi_entry_point_under_gunicorn(config: Path, tmp_path: Path) -> None:
    token = admin_token(config)
    log_path = tmp_path / "gunicorn.log"
    args = ["--workers", "1", "--threads", "8", "--bind", "fd://{fd}", "hubkit.wsgi:create_app()"]
    proc, base = serve_in_process("gunicorn", args, config, log_path)
    try:
        asyncio.run(flow(base, token))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log_path.read_text()
    assert "Traceback" not in text, text


@pytest.mark.parametrize("runner", [uvicorn_serving, hypercorn_serving], ids=["uvicorn", "hypercorn"])
async def test_flow_under_asgi_server(app, admin_headers, runner: Callable[..., Any]):
    sock = listening_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        await _flow_with_app(app, admin_headers, runner, sock, base)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


async def _flow_with_app(app: Any, admin_headers: dict[str, str], runner: Any, sock: socket.socket, base: str) -> None:
    async with runner(app, sock), httpx.AsyncClient(base_url=base, timeout=20) as c:
        r = await c.get("/hub/api")
        assert r.json()["version"] == "6.1.1" and r.headers["x-jupyterhub-version"] == "6.1.1"
        assert (await c.post("/hub/api/users/alice", headers=admin_headers)).status_code == 201
        r = await c.post("/hub/api/users/alice/server", json={"user_options": {}}, headers=admin_headers)
        assert r.status_code in (201, 202)
        lines = []
        async with c.stream("GET", "/hub/api/users/alice/server/progress", headers=admin_headers) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    lines.append(json.loads(line[6:]))
        assert lines[-1]["ready"] is True
        assert (await c.delete("/hub/api/users/alice/server", headers=admin_headers)).status_code == 204
        big = b"x" * (app.state.hub.settings.hub.max_body_bytes + 1)
        r = await c.post(
            "/hub/api/users", content=big, headers={**admin_headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 413
        page = await c.get("/hub/login")
        assert page.status_code == 200 and "<form" in page.text


@pytest.mark.parametrize("entry", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("section", "key"),
    [('[proxy]\nbackend = "none"\n', "port"), ('[proxy]\nbackend = "hubkit-proxy"\n', "hub_port")],
    ids=["alone", "proxied"],
)
def test_port_zero_is_refused_under_another_server(tmp_path: Path, entry: str, section: str, key: str) -> None:
    """Port 0 is for the ``hubkit`` command, which binds it and reports it; under an ASGI/WSGI server the hub
    would hand out URLs naming port 0, so the config is refused with what to write instead."""
    import importlib

    from hubkit.errors import ConfigError

    config = tmp_path / "hubkit.toml"
    config.write_text(f'[hub]\ndata_dir = "{tmp_path / "data"}"\n{key} = 0\n{section}')
    module = importlib.import_module(f"hubkit.{entry}")
    with pytest.raises(ConfigError, match=rf"\[hub\] {key} = 0 works only with the hubkit command"):
        module.create_app(str(config))
