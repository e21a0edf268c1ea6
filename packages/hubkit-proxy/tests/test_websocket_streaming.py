"""Websocket tunnelling and 1 GiB streaming through hubkit-proxy, with memory and connection accounting."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import psutil
import pytest
import websockets
from conftest import Backend, ProxyProc
from test_data_path import add_route, wait_metric
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]
GIB = 1 << 30


async def test_websocket_text_binary_ping_close(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/user/a", backend.url)
    async with websockets.connect(f"ws://127.0.0.1:{hproxy.port}/user/a/ws", max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        blob = bytes(range(256)) * 4096  # 1 MiB binary frame
        await ws.send(blob)
        assert await ws.recv() == blob
        pong = await ws.ping(b"p1")
        await asyncio.wait_for(pong, 5)
        assert hproxy.metric("hubkit_proxy_open_websockets") == 1
        await ws.send("close:4321")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4321
    assert ws.close_reason == "bye"
    assert await wait_metric(hproxy, "hubkit_proxy_open_websockets", 0) == 0
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0


async def test_websocket_activity_and_route_delete(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/user/a", backend.url)
    async with httpx.AsyncClient() as c, websockets.connect(f"ws://127.0.0.1:{hproxy.port}/user/a/ws") as ws:
        before = (await c.get(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).json()[
            "last_activity"
        ]
        await asyncio.sleep(0.05)
        await ws.send("tick")
        await ws.recv()
        after = (await c.get(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).json()[
            "last_activity"
        ]
        assert after > before
        # deleting the route tears its tunnel down
        assert (await c.delete(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).status_code == 204
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert await wait_metric(hproxy, "hubkit_proxy_open_websockets", 0) == 0
    for _ in range(50):
        if backend.open_ws == 0:
            break
        await asyncio.sleep(0.1)
    assert backend.open_ws == 0


async def test_websocket_error_statuses(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/dead", "http://127.0.0.1:9")
    with pytest.raises(InvalidStatus) as err:
        async with websockets.connect(f"ws://127.0.0.1:{hproxy.port}/nowhere/ws"):
            pass
    assert err.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as err:
        async with websockets.connect(f"ws://127.0.0.1:{hproxy.port}/dead/ws"):
            pass
    assert err.value.response.status_code == 503


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_one_gib_up_and_down_with_flat_memory(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    assert hproxy.proc is not None
    base = psutil.Process(hproxy.proc.pid).memory_info().rss
    peak = [base]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(hproxy.proc.pid, peak, stop))
    block = b"\xab" * (1 << 20)
    want = hashlib.sha256()

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(GIB // len(block)):
            want.update(block)
            yield block

    async with httpx.AsyncClient(timeout=120) as c:
        r = await c.post(hproxy.url + "/upload", content=body(), headers={"Content-Length": str(GIB)})
        assert r.status_code == 200
        assert r.json() == {"size": GIB, "sha256": want.hexdigest()}
        got = 0
        async with c.stream("GET", hproxy.url + f"/download?size={GIB}") as resp:
            assert resp.status_code == 200
            async for chunk in resp.aiter_raw():
                got += len(chunk)
        assert got == GIB
    stop.set()
    await sampler
    growth = peak[0] - base
    assert growth < 64 * (1 << 20), f"proxy RSS grew by {growth / (1 << 20):.1f} MiB during 2 GiB of transfer"
