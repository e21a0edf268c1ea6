"""The app is plain ASGI: the same flow works under uvicorn and under hypercorn (real sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def uvicorn_server(app: Any, port: int) -> AsyncIterator[None]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def hypercorn_server(app: Any, port: int) -> AsyncIterator[None]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    cfg = Config()
    cfg.bind = [f"127.0.0.1:{port}"]
    cfg.loglevel = "WARNING"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, cfg, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    async with httpx.AsyncClient() as c:
        for _ in range(200):
            try:
                await c.get(f"http://127.0.0.1:{port}/hub/health")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.mark.parametrize("runner", [uvicorn_server, hypercorn_server], ids=["uvicorn", "hypercorn"])
async def test_flow_under_asgi_server(app, admin_headers, runner: Callable[..., Any]):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with runner(app, port), httpx.AsyncClient(base_url=base, timeout=20) as c:
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
