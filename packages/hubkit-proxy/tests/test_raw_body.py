"""Large fixed-length bodies pass through unparsed (no copy per chunk): however the target splits its head and
body into reads, the client gets exactly the bytes, and the connection is reused afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from conftest import ProxyProc

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
BODY = os.urandom(300_000)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(BODY)

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def in_pieces(w: asyncio.StreamWriter, *pieces: bytes) -> None:
    for piece in pieces:
        w.write(piece)
        await w.drain()
        await asyncio.sleep(0.05)  # separate reads at the proxy


SPLITS: dict[str, Writer] = {
    "head and body in one write": lambda w: in_pieces(w, HEAD + BODY),
    "head split mid-line": lambda w: in_pieces(w, HEAD[:20], HEAD[20:] + BODY[:1000], BODY[1000:]),
    "blank line split": lambda w: in_pieces(w, HEAD[:-1], HEAD[-1:] + BODY),
    "blank line split after CR LF": lambda w: in_pieces(w, HEAD[:-2], HEAD[-2:], BODY[:5], BODY[5:]),
    "interim 100 first": lambda w: in_pieces(w, b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + BODY),
}


@pytest.fixture
async def raw_target() -> AsyncIterator[tuple[str, list[int]]]:
    """A target answering every request with BODY, written as the request path's SPLITS entry says."""
    connections: list[int] = []
    by_path = {f"/r{i}": fn for i, fn in enumerate(SPLITS.values())}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                await by_path[path.rstrip("/").split("?")[0][len("/t") :] or "/r0"](writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", connections
    server.close()


async def test_large_bodies_pass_through_whatever_the_reads(
    raw_target: tuple[str, list[int]], hproxy: ProxyProc
) -> None:
    url, connections = raw_target
    want = hashlib.sha256(BODY).hexdigest()
    async with httpx.AsyncClient(timeout=20) as c:
        r = await c.post(hproxy.api_url + "/api/routes/t", json={"target": url}, headers=hproxy.auth)
        assert r.status_code == 201
        for _round in range(2):
            for i, name in enumerate(SPLITS):
                r = await c.get(f"{hproxy.url}/t/r{i}")
                assert r.status_code == 200, name
                assert hashlib.sha256(r.content).hexdigest() == want, name
                assert r.headers["content-length"] == str(len(BODY))
    assert len(connections) == 1  # every response ended cleanly: one upstream connection served them all
    # all but the interim-100 case went around the parser (an interim response first keeps the parser on)
    assert hproxy.metric("hubkit_proxy_passthrough_bodies_total") == 2 * (len(SPLITS) - 1)
