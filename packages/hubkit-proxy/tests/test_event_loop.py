"""uvloop is the default event loop wherever it installs; the stdlib loop still runs the whole data path."""

from __future__ import annotations

import importlib.util

import httpx
import pytest
from conftest import Backend, ProxyProc, make_proxy
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def info_line(p: ProxyProc) -> str:
    text = httpx.get(p.api_url + "/metrics", timeout=5).text
    return next(line for line in text.splitlines() if line.startswith("hubkit_proxy_info{"))


def test_uvloop_is_a_default_dependency_and_the_default_loop(proxy_factory: list[ProxyProc]) -> None:
    # uvloop is in hubkit-proxy's dependencies (for CPython off Windows): a plain install brings it
    assert importlib.util.find_spec("uvloop") is not None, "uvloop missing: hubkit-proxy depends on it"
    p = make_proxy("hubkit")
    p.start()
    proxy_factory.append(p)
    line = info_line(p)
    assert 'loop="uvloop"' in line and 'heap_tuned="true"' in line


async def test_stdlib_loop_fallback_runs_the_data_path(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    p = make_proxy("hubkit", "--no-uvloop")
    p.start()
    proxy_factory.append(p)
    assert 'loop="asyncio"' in info_line(p)
    async with httpx.AsyncClient() as c:
        r = await c.post(p.api_url + "/api/routes/", json={"target": backend.url}, headers=p.auth)
        assert r.status_code == 201
        r = await c.get(p.url + "/download?size=3000000&chunked=1")
        assert r.status_code == 200 and len(r.content) == 3_000_000
        r = await c.post(p.url + "/upload", content=b"z" * 500_000)
        assert r.json()["size"] == 500_000
        for i in range(3):  # keep-alive reuse on the stdlib transports
            assert (await c.get(p.url + f"/k{i}")).json()["path"] == f"/k{i}"
    async with connect(p.url.replace("http", "ws") + "/ws") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01" * 40_000)
        assert await ws.recv() == b"\x00\x01" * 40_000
