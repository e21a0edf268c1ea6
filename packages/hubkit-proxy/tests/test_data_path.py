"""Forwarding behaviour of hubkit-proxy (section D3): routing, headers, bodies, errors, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from conftest import Backend, ProxyProc, make_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def add_route(p: ProxyProc, path: str, target: str, **data: object) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(p.api_url + "/api/routes" + path, json={"target": target, **data}, headers=p.auth)
        assert r.status_code == 201


async def raw(p: ProxyProc, payload: bytes, read_until_close: bool = True, seconds: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    writer.write(payload)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(-1), seconds)
        return await asyncio.wait_for(reader.read(65536), seconds)
    finally:
        writer.close()


async def wait_metric(p: ProxyProc, name: str, value: float, seconds: float = 5.0) -> float:
    deadline = asyncio.get_running_loop().time() + seconds
    got = p.metric(name)
    while got != value and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        got = p.metric(name)
    return got


async def test_longest_segment_prefix_and_full_path(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/user/alice", backend.url + "/base")
    await add_route(hproxy, "/user/al", "http://127.0.0.1:9")  # must not catch /user/alice
    async with httpx.AsyncClient() as c:
        r = await c.get(hproxy.url + "/user/alice/lab?x=1")
        assert r.status_code == 200
        assert r.json()["path"] == "/base/user/alice/lab?x=1"
        r = await c.get(hproxy.url + "/user/alice")
        assert r.json()["path"] == "/base/user/alice"
        assert (await c.get(hproxy.url + "/user/alicex")).status_code == 404


async def test_forwarded_headers_and_host(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    async with httpx.AsyncClient() as c:
        r = await c.get(
            hproxy.url + "/x", headers={"X-Forwarded-For": "10.0.0.1", "Host": "hub.example:8443"}
        )
    h = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert h["host"] == "hub.example:8443"
    assert h["x-forwarded-for"] == "10.0.0.1,127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-port"] == "8443"
    assert h["x-forwarded-host"] == "hub.example:8443"


async def test_the_hub_route_alone_gets_the_mark_and_clients_cannot_send_it(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    # the hub believes X-Forwarded-* only with this mark (core: auth/forwarded.py), so no client may forge it
    # and no user's server may see it
    p = make_proxy("hubkit", "--default-target", backend.url)
    p.env["HUBKIT_PROXY_HUB_MARK"] = "m4rk-" + "a" * 40
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/user/bob", backend.url)
    forged = {"X-Hubkit-Forwarded": "forged", "x-hubkit-forwarded": "forged-too"}
    async with httpx.AsyncClient() as c:
        hub = {
            k.lower(): v
            for k, v in (await c.get(p.url + "/hub/login", headers=forged)).json()["headers"].items()
        }
        user = {
            k.lower(): v
            for k, v in (await c.get(p.url + "/user/bob/x", headers=forged)).json()["headers"].items()
        }
    assert hub["x-hubkit-forwarded"] == "m4rk-" + "a" * 40
    assert "x-hubkit-forwarded" not in user
    assert "forged" not in str(hub) and "forged" not in str(user)
    # the mark comes from the environment only: it is not on the command line other local users can read
    assert p.proc is not None
    assert "m4rk" not in Path(f"/proc/{p.proc.pid}/cmdline").read_text()  # noqa: ASYNC240


async def test_default_target_and_error_target(backend: Backend, proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit", "--default-target", backend.url, "--error-target", backend.url + "/hub/error")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/user/dead", "http://127.0.0.1:9")
    async with httpx.AsyncClient() as c:
        assert (await c.get(p.url + "/anything")).json()["path"] == "/anything"
        r = await c.get(p.url + "/user/dead/x?y=1")
    assert r.status_code == 503
    assert r.text == "hub error page 503"
    assert r.headers["content-type"].startswith("text/html")
    assert backend.error_hits == ["/hub/error/503?url=%2Fuser%2Fdead%2Fx%3Fy%3D1"]


async def test_dead_target_without_error_target(hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/dead", "http://127.0.0.1:9")
    async with httpx.AsyncClient() as c:
        r = await c.get(hproxy.url + "/dead/x")
        assert r.status_code == 503
        assert "503" in r.text
        # the connection stays usable for the next request
        assert (await c.get(hproxy.url + "/_chp_healthz")).status_code == 200
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0


async def test_hanging_target_times_out_with_503(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    async with httpx.AsyncClient(timeout=20) as c:
        r = await c.get(hproxy.url + "/hang")
    assert r.status_code == 503
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0


async def test_keepalive_reuses_upstream_connection(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    async with httpx.AsyncClient() as c:
        for i in range(20):
            assert (await c.get(hproxy.url + f"/k{i}")).status_code == 200
    assert hproxy.metric("hubkit_proxy_open_upstream_connections") == 1


async def test_pipelined_requests_answered_in_order(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    req = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    data = await raw(hproxy, req + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    paths = [seg.split(b'"', 1)[0] for seg in data.split(b'"path": "')[1:]]
    assert paths == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4", b"/last"]


async def test_head_and_204(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    async with httpx.AsyncClient() as c:
        r = await c.head(hproxy.url + "/download?size=5000")
        assert r.status_code == 200 and r.headers["content-length"] == "5000" and r.content == b""
        assert (await c.get(hproxy.url + "/after-head")).status_code == 200


async def test_chunked_request_and_response(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)

    async def gen():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"a" * 10000

    async with httpx.AsyncClient() as c:
        r = await c.post(hproxy.url + "/upload", content=gen())
        assert r.json()["size"] == 100000
        r = await c.get(hproxy.url + "/download?size=300000&chunked=1")
        assert r.headers.get("transfer-encoding") == "chunked"
        assert len(r.content) == 300000


async def test_expect_100_continue(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", hproxy.port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    rest = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 200")
    assert b'"size": 5' in rest


async def test_malformed_request_is_400(hproxy: ProxyProc) -> None:
    data = await raw(hproxy, b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
    data = await raw(hproxy, b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
    assert await wait_metric(hproxy, "hubkit_proxy_open_client_connections", 0) == 0
    assert hproxy.metric("hubkit_proxy_bad_requests_total") == 2


async def test_oversized_headers_is_431(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    big = b"X-Big: " + b"a" * 70000 + b"\r\n"
    data = await raw(hproxy, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert data.startswith(b"HTTP/1.1 431")
    assert backend.hits == []
    assert await wait_metric(hproxy, "hubkit_proxy_open_client_connections", 0) == 0
    assert hproxy.metric("hubkit_proxy_open_upstream_connections") == 0


async def test_client_disconnect_mid_body_leaks_nothing(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/", backend.url)
    base_clients = hproxy.metric("hubkit_proxy_open_client_connections")
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", hproxy.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"z" * 100000)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0
    assert await wait_metric(hproxy, "hubkit_proxy_open_client_connections", base_clients) == base_clients
    # and a download abandoned half-way
    reader, writer = await asyncio.open_connection("127.0.0.1", hproxy.port)
    writer.write(b"GET /download?size=100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read(100000)
    writer.transport.abort()
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0


async def test_route_delete_closes_its_connections(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/user/a", backend.url)
    async with httpx.AsyncClient() as c:
        assert (await c.get(hproxy.url + "/user/a/x")).status_code == 200
        assert hproxy.metric("hubkit_proxy_open_upstream_connections") == 1
        assert (await c.delete(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).status_code == 204
    assert await wait_metric(hproxy, "hubkit_proxy_open_upstream_connections", 0) == 0


async def test_activity_updated_by_requests(backend: Backend, hproxy: ProxyProc) -> None:
    await add_route(hproxy, "/user/a", backend.url)
    async with httpx.AsyncClient() as c:
        before = (await c.get(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).json()[
            "last_activity"
        ]
        await asyncio.sleep(0.05)
        await c.get(hproxy.url + "/user/a/x")
        after = (await c.get(hproxy.api_url + "/api/routes/user/a", headers=hproxy.auth)).json()[
            "last_activity"
        ]
    assert after > before


async def test_idle_and_stalled_clients_time_out(backend: Backend, proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit", "--keep-alive-timeout", "1000", "--timeout", "1500")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    # idle keep-alive connection
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    # a client that stops half-way through its body
    r2, w2 = await asyncio.open_connection("127.0.0.1", p.port)
    w2.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"z" * 10)
    await w2.drain()
    await asyncio.wait_for(
        reader.read(-1), 10
    )  # returns (rest of the response) only once the proxy closed it
    assert await asyncio.wait_for(r2.read(-1), 10) == b""
    writer.close()
    w2.close()
    assert await wait_metric(p, "hubkit_proxy_open_client_connections", 0) == 0
    assert await wait_metric(p, "hubkit_proxy_open_upstream_connections", 0, seconds=8) == 0
