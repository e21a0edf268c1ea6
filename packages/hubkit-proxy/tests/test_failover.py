"""A route with several targets (the default route naming several hubs): only healthy ones get requests, a target
that refuses connections is skipped at once, and safe requests lost with a dying target are retried elsewhere.

The targets are small HTTP servers in the test's event loop (issue 15 item 5 at the proxy level; the end-to-end
test with hub replicas belongs to the replicas work).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from conftest import ProxyProc, make_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@dataclass
class Tiny:
    """A named HTTP server: answers its name; ``healthy`` drives /health; ``drop`` closes requests unanswered."""

    name: str
    runner: web.AppRunner | None = None
    url: str = ""
    healthy: bool = True
    drop: bool = False
    hits: Counter[str] = field(default_factory=Counter)

    async def start(self) -> None:
        async def health(request: web.Request) -> web.Response:
            return web.Response(status=200 if self.healthy else 503)

        async def any_path(request: web.Request) -> web.StreamResponse:
            await request.read()
            if self.drop:  # the process died with the request in hand
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            self.hits[request.method] += 1
            return web.Response(text=self.name)

        app = web.Application()
        app.router.add_get("/hub/health", health)
        app.router.add_route("*", "/{tail:.*}", any_path)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Close the listener: new connections are refused, as for a killed hub."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def tiny() -> AsyncIterator[Callable[[str], Awaitable[Tiny]]]:
    made: list[Tiny] = []

    async def make(name: str) -> Tiny:
        t = Tiny(name)
        await t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.stop()


def proxy_over(factory: list[ProxyProc], *targets: str, extra: tuple[str, ...] = ()) -> ProxyProc:
    args = [a for t in targets for a in ("--default-target", t)]
    p = make_proxy("hubkit", *args, "--health-check-interval", "200", "--health-check-timeout", "300", *extra)
    p.start()
    factory.append(p)
    return p


async def answers(p: ProxyProc, n: int, method: str = "GET", seconds: float = 5) -> Counter[str]:
    got: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=seconds) as c:
        for i in range(n):
            r = await c.request(method, f"{p.url}/user/x/{i}", content=b"body" if method == "POST" else None)
            assert r.status_code == 200, (r.status_code, r.text)
            got[r.text] += 1
    return got


async def test_requests_spread_over_targets(
    tiny: Callable[[str], Awaitable[Tiny]], proxy_factory: list[ProxyProc]
) -> None:
    a, b = await tiny("a"), await tiny("b")
    p = proxy_over(proxy_factory, a.url, b.url)
    got = await answers(p, 20)
    assert got["a"] > 0 and got["b"] > 0
    async with httpx.AsyncClient() as c:
        routes = (await c.get(p.api_url + "/api/routes", headers=p.auth)).json()
    assert routes["/"]["target"] == a.url and routes["/"]["targets"] == [a.url, b.url]


async def test_refused_target_fails_over_within_the_request(
    tiny: Callable[[str], Awaitable[Tiny]], proxy_factory: list[ProxyProc]
) -> None:
    """A killed hub refuses connections: every request, POST included (nothing was sent), lands on the other."""
    a, b = await tiny("a"), await tiny("b")
    # no health path (TCP probes only) and a long interval: the failover here is the connect-time one
    p = proxy_over(proxy_factory, a.url, b.url, extra=("--health-check-interval", "60000"))
    await answers(p, 4)
    await a.stop()
    assert await answers(p, 10) == Counter(b=10)
    assert await answers(p, 6, "POST") == Counter(b=6)
    assert p.metric("hubkit_proxy_upstream_errors_total") >= 1  # the refused connect was seen, not hidden


async def test_safe_request_lost_mid_way_is_retried_elsewhere(
    tiny: Callable[[str], Awaitable[Tiny]], proxy_factory: list[ProxyProc]
) -> None:
    a, b = await tiny("a"), await tiny("b")
    p = proxy_over(proxy_factory, a.url, b.url, extra=("--health-check-interval", "60000"))
    a.drop = True  # accepts, reads the request, dies without answering
    got = await answers(p, 6)
    assert got == Counter(b=6)
    # a POST already sent may have had effects: it is not repeated, the client gets the error
    a.drop, b.drop = True, True
    async with httpx.AsyncClient(timeout=5) as c:
        statuses = {(await c.post(f"{p.url}/user/x/post{i}", content=b"x")).status_code for i in range(4)}
    assert statuses <= {502, 503} and statuses
    assert a.hits["POST"] == 0 and b.hits["POST"] == 0


async def test_health_checks_take_a_hung_target_out_and_back(
    tiny: Callable[[str], Awaitable[Tiny]], proxy_factory: list[ProxyProc]
) -> None:
    b = await tiny("b")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # connections complete in the kernel, nobody ever answers: a stopped (SIGSTOP) hub
    try:
        hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        p = proxy_over(proxy_factory, hung_url, b.url, extra=("--health-check-path", "/hub/health"))
        await asyncio.sleep(1.0)  # a few 200 ms probes: the hung target times out and is marked down
        assert await answers(p, 10, seconds=3) == Counter(b=10)
    finally:
        hung.close()
    # an unhealthy answer (503 from /hub/health) also takes a target out, and a good one brings it back
    c = await tiny("c")
    p2 = proxy_over(proxy_factory, c.url, b.url, extra=("--health-check-path", "/hub/health"))
    c.healthy = False
    await asyncio.sleep(1.0)
    assert await answers(p2, 8) == Counter(b=8)
    c.healthy = True
    await asyncio.sleep(1.0)
    assert (await answers(p2, 8))["c"] > 0


def test_targets_in_the_route_api(proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit")
    p.start()
    proxy_factory.append(p)
    with httpx.Client(headers=p.auth) as c:
        body = {"target": "http://127.0.0.1:1", "targets": ["http://127.0.0.1:2"], "jupyterhub": True}
        assert c.post(p.api_url + "/api/routes/user/z", json=body).status_code == 201
        assert c.get(p.api_url + "/api/routes/user/z").json()["targets"] == ["http://127.0.0.1:2"]
        for bad in ({"target": "http://x", "targets": "http://y"}, {"target": "http://x", "targets": [1]}):
            r = c.post(p.api_url + "/api/routes/user/z", json=bad)
            assert r.status_code == 400 and "targets" in r.text
