"""Upstream connections and the bounded per-route keep-alive pool.

Each route owns its pool, so deleting a route closes exactly its connections, and a slow target can tie up
at most ``max_upstream_per_route`` sockets; further requests wait for a free one instead of opening more.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser

from .routing import Route, Target

if TYPE_CHECKING:
    from .frontend import ClientProtocol
    from .server import Proxy


RAW_MIN = 64 * 1024  # bodies at least this large (with a Content-Length) pass through unparsed


class _RawBody(Exception):
    """Raised from on_headers_complete to stop the parser: the body is passed through as received."""


class UpstreamProtocol(asyncio.Protocol):
    """One connection to a target. While busy it feeds response events to its ``client``.

    A large body with a Content-Length is not fed to the parser, which would copy every chunk into a new bytes
    object: the received buffers go to the client as memoryviews, counted down to the end of the body.
    """

    def __init__(self, proxy: Proxy, route: Route, target: Target, pooled: bool) -> None:
        self.proxy = proxy
        self.route = route
        self.target = target  # which of the route's targets this connection goes to
        self.pooled = pooled
        self.parser = HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: ClientProtocol | None = None
        self.tunnel: asyncio.Transport | None = None  # client transport once a websocket is established
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.reused = False
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = False  # of the current response, read when its head is complete
        self.raw_left = 0  # body bytes still to pass through unparsed
        self.head_tail = b""  # last bytes fed while a head was incomplete (its end may straddle two reads)
        self.messages = 0  # messages completed during the current feed (an interim 100 before the head)

    # -- asyncio callbacks ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)
        self.route.conns.add(self)
        self.proxy.metrics.upstream_conns += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.metrics.upstream_conns -= 1
        self.route.conns.discard(self)
        if self in self.route.idle:
            self.route.idle.remove(self)
        self.proxy.idle_conns.discard(self)
        if self.pooled:
            self.proxy.pool.lost(self.route)
        client = self.client
        self.client = None
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        elif client is not None:
            client.upstream_failed(self)

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.write(data)
            self.idle_since = self.route.seen = time.monotonic()
            return
        client = self.client
        if client is None:  # bytes on an idle connection: the target broke protocol
            self.abort()
            return
        if self.raw_left:
            self.pass_raw(client, data)
            return
        client.hold()
        self.messages = 0
        try:
            self.parser.feed_data(data)
            self.head_tail = data[-3:] if len(data) >= 3 else (self.head_tail + data)[-3:]
        except HttpParserUpgrade as exc:
            if self.client is not None:
                self.client.upgrade_established(self, data[exc.args[0] :])
        except HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _RawBody):
                self.bad_response(client)
                return
            end = self.head_end(data)
            # the stopped parser is spent: the next response on this connection gets a new one
            self.parser = HttpResponseParser(self)
            self.head_tail = b""
            if end < len(data):
                self.pass_raw(client, memoryview(data)[end:])
        except HttpParserError:
            self.bad_response(client)
        finally:
            client.flush()

    def bad_response(self, client: ClientProtocol) -> None:
        self.client = None
        client.upstream_failed(self, bad_response=True)
        self.abort()

    def head_end(self, data: bytes) -> int:
        """Offset in ``data`` just past the head that ended in it (the head began with this read or the last)."""
        joined = self.head_tail + data[:3]
        i = joined.find(b"\r\n\r\n")
        if i != -1:
            return i + 4 - len(self.head_tail)
        return data.find(b"\r\n\r\n") + 4

    def pass_raw(self, client: ClientProtocol, chunk: bytes | memoryview) -> None:
        left = self.raw_left
        if len(chunk) > left:  # bytes beyond the announced body: the target broke protocol
            self.raw_left = 0
            self.bad_response(client)
            return
        self.raw_left = left - len(chunk)
        client.response_body(chunk)
        if not self.raw_left:
            client.response_done(self)

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading()
        elif self.client is not None:
            self.client.pause_reading(2)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume_reading()
        elif self.client is not None:
            self.client.resume_reading(2)

    # -- httptools callbacks --------------------------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers, self.headers = self.headers, []
        client = self.client
        if client is None:
            return
        status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        client.response_head(self, status, self.reason, headers)
        ex = client.current
        if (
            status >= 200
            and status not in (204, 304)
            and self.messages == 0
            and ex is not None
            and ex.upstream is self
            and not ex.is_head
            and not ex.resp_chunked
        ):
            length = _raw_length(headers)
            if length >= RAW_MIN:
                self.raw_left = length
                self.proxy.metrics.raw_bodies += 1
                raise _RawBody()

    def on_body(self, body: bytes) -> None:
        if self.client is not None:
            self.client.response_body(body)

    def on_message_complete(self) -> None:
        self.messages += 1
        if self.client is not None:
            self.client.response_done(self)

    # -- helpers --------------------------------------------------------------------------------------------
    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(data)


def _raw_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The Content-Length of a response that may pass through unparsed; 0 when it may not."""
    length = 0
    for name, value in headers:
        n = name.lower()
        if n == b"transfer-encoding":
            return 0
        if n == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return 0
    return length


_SSL: ssl.SSLContext | None = None


def client_ssl_context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


class Pool:
    """Hands out upstream connections: idle first, then new ones up to the per-route bound, then a queue."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def acquire(
        self,
        route: Route,
        cb: Callable[[UpstreamProtocol | None], None],
        *,
        fresh: bool = False,
        tunnel: bool = False,
    ) -> None:
        """Call ``cb(conn)`` now or later; ``cb(None)`` when connecting failed or the route went away.

        ``fresh`` skips idle connections (a retry); ``tunnel`` opens a websocket connection outside the pool bound.
        """
        # Several targets: the target is chosen per request (round-robin over healthy ones), then an idle
        # connection to it is reused if there is one; one target: any idle connection will do.
        order = self.proxy.health.order(route) if len(route.targets) > 1 else None
        if tunnel:
            self.connect(route, cb, pooled=False, order=order)
            return
        if not fresh:
            conn = self._idle_conn(route, order[0] if order else None)
            if conn is not None:
                conn.reused = True
                cb(conn)
                return
        if route.pooled >= self.proxy.settings.max_upstream_per_route:
            route.waiting.append(cb)
            return
        route.pooled += 1
        self.connect(route, cb, pooled=True, order=order)

    def _idle_conn(self, route: Route, target: Target | None) -> UpstreamProtocol | None:
        idle = route.idle
        if target is None:
            while idle:
                conn = idle.pop()
                self.proxy.idle_conns.discard(conn)
                if not conn.closed:
                    return cast(UpstreamProtocol, conn)
            return None
        for i in range(len(idle) - 1, -1, -1):
            conn = idle[i]
            if conn.closed or conn.target is target:
                del idle[i]
                self.proxy.idle_conns.discard(conn)
                if not conn.closed:
                    return cast(UpstreamProtocol, conn)
        return None

    def lost(self, route: Route) -> None:
        """A pool connection closed: its slot goes to the next waiting request, if any."""
        route.pooled -= 1
        if route.waiting and self.proxy.routes.routes.get(route.path) is route:
            route.pooled += 1
            self.connect(route, route.waiting.popleft(), pooled=True)

    def connect(
        self,
        route: Route,
        cb: Callable[[UpstreamProtocol | None], None],
        *,
        pooled: bool,
        order: list[Target] | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(route, cb, pooled, order))
        self.proxy.tasks.add(task)
        task.add_done_callback(self.proxy.tasks.discard)

    async def _connect(
        self,
        route: Route,
        cb: Callable[[UpstreamProtocol | None], None],
        pooled: bool,
        order: list[Target] | None,
    ) -> None:
        """Connect to the route's targets in health order until one accepts: nothing has been sent yet, so
        moving on is safe for any request."""
        health = self.proxy.health
        multi = len(route.targets) > 1
        conn: UpstreamProtocol | None = None
        for target in order or health.order(route):
            try:
                conn = await self._open(route, target, pooled)
                break
            except (TimeoutError, OSError, ssl.SSLError) as exc:
                self.proxy.metrics.upstream_errors += 1
                if multi:
                    health.mark_down(target, f"connect: {type(exc).__name__}: {exc}")
        if conn is None:
            if pooled:
                self.lost(route)
            cb(None)
            return
        if self.proxy.routes.routes.get(route.path) is not route:  # deleted or retargeted while connecting
            conn.abort()
            cb(None)
            return
        cb(conn)

    async def _open(self, route: Route, t: Target, pooled: bool) -> UpstreamProtocol:
        loop = asyncio.get_running_loop()
        coro: Any
        if t.unix_path is not None:
            coro = loop.create_unix_connection(
                lambda: UpstreamProtocol(self.proxy, route, t, pooled), t.unix_path
            )
        else:
            sslctx = client_ssl_context() if t.ssl else None
            coro = loop.create_connection(
                lambda: UpstreamProtocol(self.proxy, route, t, pooled), t.host, t.port, ssl=sslctx
            )
        _transport, conn = await asyncio.wait_for(coro, self.proxy.settings.connect_timeout)
        return cast(UpstreamProtocol, conn)

    def release(self, conn: UpstreamProtocol, reusable: bool) -> None:
        route = conn.route
        conn.client = None
        if not reusable or conn.closed or conn not in route.conns:
            conn.abort()  # connection_lost hands its pool slot to a waiter
            return
        if route.waiting:
            route.waiting.popleft()(conn)
            return
        conn.idle_since = time.monotonic()
        route.idle.append(conn)
        self.proxy.idle_conns.add(conn)

    def sweep(self, now: float) -> None:
        limit = self.proxy.settings.upstream_idle_timeout
        for conn in [c for c in self.proxy.idle_conns if now - c.idle_since > limit]:
            self.proxy.idle_conns.discard(conn)
            conn.abort()
