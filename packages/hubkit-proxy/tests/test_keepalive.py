"""Client keep-alive: idle time counts from the last byte in either direction (issue 12, item 11).

Before the fix the idle timer moved only when the client sent bytes, so a response slower than the keep-alive
timeout left the connection "idle" the moment it finished, and the next request on it got no answer.
"""

from __future__ import annotations

import asyncio
import random
import socket
from types import SimpleNamespace

import httpx
import pytest
from conftest import Backend, ProxyProc, make_proxy
from hubkit_proxy.frontend import ClientProtocol

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def add_route(p: ProxyProc, path: str, target: str) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(p.api_url + "/api/routes" + path, json={"target": target}, headers=p.auth)
        assert r.status_code == 201


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def test_connection_survives_a_response_slower_than_the_keepalive_timeout(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    # keep-alive 3 s; the response takes 4 s; the next request goes 1.5 s after it, so at least one 1 s sweep
    # runs in between. Counting only client bytes, that sweep sees 5.5 s of "idle" and closes the connection.
    p = make_proxy("hubkit", "--keep-alive-timeout", "3000")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    try:
        writer.write(b"GET /slow?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(read_response(reader), 15)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"slow")
        await asyncio.sleep(1.5)
        writer.write(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        second = await asyncio.wait_for(read_response(reader), 10)
        assert second.startswith(b"HTTP/1.1 200"), second[:200]
        assert b'"/after"' in second
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        pytest.fail(f"the proxy dropped the keep-alive connection after a slow response: {exc!r}")
    finally:
        writer.close()


async def test_slow_responses_on_keepalive_connections_under_load(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    """Bounded load: 40 keep-alive connections x 6 requests, a third slower than the keep-alive timeout (2 s).

    Raw connections, so nothing hides a dropped connection: a client that checks for EOF before reusing one
    (httpx does) would open a new connection and never see the bug.
    """
    p = make_proxy("hubkit", "--keep-alive-timeout", "2000")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    rng = random.Random(12)
    errors: list[str] = []
    done = 0

    async def client(i: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        try:
            for j in range(6):
                slow = rng.random() < 1 / 3
                path = f"/slow?ms={rng.randint(2200, 2800)}" if slow else f"/c{i}/r{j}"
                try:
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    answer = await asyncio.wait_for(read_response(reader), 20)
                    if not answer.startswith(b"HTTP/1.1 200"):
                        errors.append(f"{path}: {answer[:40]!r}")
                    done += 1
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    errors.append(f"{path}: {exc!r}")
                    return
                await asyncio.sleep(rng.uniform(0.2, 1.5))  # always below the keep-alive timeout
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(40))), 90)
    assert errors == [], f"{len(errors)} transport errors / bad answers, e.g. {errors[:5]}"
    assert done == 240


async def _lifetime(port: int, *, every: float, limit: float) -> tuple[float | None, bytes]:
    """Open a connection and send a request head one header line every ``every`` seconds, never finishing it.
    Returns the seconds until the proxy closed the connection (None: still open after ``limit``) and what it
    answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    got = b""
    try:
        writer.write(b"GET /slowloris HTTP/1.1\r\nHost: x\r\n")
        while loop.time() - t0 < limit:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), every)
            except TimeoutError:
                writer.write(b"X-Slow: 1\r\n")  # a byte now and then: the keep-alive timer never fires
                continue
            except ConnectionError:
                return loop.time() - t0, got
            if not chunk:
                return loop.time() - t0, got
            got += chunk
        return None, got
    finally:
        writer.close()


async def test_a_request_head_trickled_forever_is_cut_off(backend: Backend, proxy_factory: list[ProxyProc]) -> None:
    """Slowloris on the public port: a head that never completes is refused with 408 once the head deadline
    passes, although bytes keep arriving more often than the keep-alive timeout."""
    p = make_proxy("hubkit", "--keep-alive-timeout", "1000", "--request-head-timeout", "3000")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    lifetime, answer = await _lifetime(p.port, every=0.4, limit=15)
    assert lifetime is not None, "the proxy never closed a connection whose request head never ended"
    assert 2.5 < lifetime < 6, lifetime
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    # a head that is slow but within the deadline is served
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    try:
        for part in (b"GET /in-time HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"\r\n"):
            writer.write(part)
            await asyncio.sleep(0.6)
        answer = await asyncio.wait_for(read_response(reader), 10)
        assert answer.startswith(b"HTTP/1.1 200") and b'"/in-time"' in answer
        # and the deadline is per head: the next head on this connection gets the whole time again
        await asyncio.sleep(0.5)  # under the keep-alive timeout; the second head ends > 3 s after the first began
        writer.write(b"GET /second HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.8)
        writer.write(b"\r\n")
        answer = await asyncio.wait_for(read_response(reader), 10)
        assert answer.startswith(b"HTTP/1.1 200") and b'"/second"' in answer
    finally:
        writer.close()


async def test_a_response_still_draining_to_a_slow_reader_keeps_its_connection(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    """The upstream finished long ago, but the client is still reading the response out of the proxy's buffers:
    those bytes are activity too, so the keep-alive timer must not run out under a reader that is busy."""
    p = make_proxy("hubkit", "--keep-alive-timeout", "2000")
    p.start()
    proxy_factory.append(p)
    await add_route(p, "/", backend.url)
    size = 12 * 1024 * 1024
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # small window: the proxy must buffer
    sock.connect(("127.0.0.1", p.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET /download?size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        left = size
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while left:  # about 1.2 MiB/s: many keep-alive timeouts long
            chunk = await asyncio.wait_for(reader.read(min(left, 64 * 1024)), 10)
            assert chunk, f"connection closed with {left} bytes of the response unread"
            left -= len(chunk)
            await asyncio.sleep(0.05)
        assert loop.time() - t0 > 4  # the test really read for longer than twice the keep-alive timeout
        writer.write(b"GET /after-download HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(read_response(reader), 10)
        assert answer.startswith(b"HTTP/1.1 200") and b'"/after-download"' in answer
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        pytest.fail(f"the proxy dropped the connection of a client still reading its response: {exc!r}")
    finally:
        writer.close()


@pytest.mark.parametrize("request_waiting", [True, False])
async def test_idle_sweep_spares_a_connection_whose_next_request_is_waiting_unread(request_waiting: bool) -> None:
    """The 1 s sweep may run in the same loop turn in which a reused connection's next request arrived, before that
    request is read (a busy turn lasts tens of ms). Such a connection is not idle: closing it would drop the request
    unanswered. Here the request is in the socket and the sweep runs before the loop could read it; a connection
    with nothing waiting is still closed."""
    settings = SimpleNamespace(timeout=0, request_head_timeout=20.0, keep_alive_timeout=5.0, proxy_timeout=0)
    proxy = SimpleNamespace(settings=settings, clients=set(), metrics=SimpleNamespace(client_conns=0, websockets=0))
    ours, theirs = socket.socketpair()
    proto = ClientProtocol(proxy)  # type: ignore[arg-type]
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: proto, ours)
    try:
        if request_waiting:
            theirs.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        proto.check_timeouts(proto.last_io + 6.0)  # no await since the send: the loop has not read it
        assert transport.is_closing() is not request_waiting
    finally:
        transport.close()
        theirs.close()
