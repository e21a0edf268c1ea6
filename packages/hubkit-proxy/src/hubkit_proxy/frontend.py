"""The client side of the data path: parse requests, route them, stream bodies both ways, tunnel websockets.

Bodies are never collected: every chunk goes straight to the other socket, and a full write buffer on one side
pauses reading on the other (asyncio flow control), so a 1 GiB transfer needs a few hundred KiB of memory.
Pipelined requests are answered in order: later ones wait (reading paused) until the current one is done.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from .upstream import UpstreamProtocol
from .wire import IDEMPOTENT, SAFE, Exchange, request_head, response_head, simple_response

if TYPE_CHECKING:
    from .server import Proxy

PAUSE_PIPELINE = 1  # reasons reading from the client is paused (bit flags)
PAUSE_UPSTREAM_FULL = 2
PAUSE_PENDING = 4
PAUSE_UPGRADE = 8
PENDING_LIMIT = 256 * 1024
HEALTHZ = simple_response(200, b'{"status":"OK"}', b"application/json")
SIOCOUTQ = getattr(termios, "TIOCOUTQ", 0)  # Linux: bytes in a socket's send queue the peer has not taken yet
FIONREAD = getattr(termios, "FIONREAD", 0)  # bytes received on a socket and not read yet


class HeadTooLarge(Exception):
    pass


class ClientProtocol(asyncio.Protocol):
    def __init__(self, proxy: Proxy, proto: str = "http") -> None:
        self.proxy = proxy
        self.proto = proto
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.local_port = 0
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.head_began = 0.0  # when the request head being received began (0: none in progress)
        self.incoming: Exchange | None = None  # being received
        self.current: Exchange | None = None  # being answered
        self.queue: deque[Exchange] = deque()
        self.paused = 0
        self.last_io = time.monotonic()
        self.unsent = 0  # bytes of the last response still on their way to the client at the last sweep
        self.draining = False  # the last response may not have reached the client yet (watched until it has)
        self.closed = False
        self.tunnel: UpstreamProtocol | None = None
        self.early: list[bytes] = []  # bytes after an upgrade request, before the target accepted it
        # Output held while one upstream read is handled, then sent with one writelines (one writev): a small
        # response's head, body and chunk terminator cost one send instead of three.
        self.out: list[bytes | memoryview] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "127.0.0.1"
        sock = transport.get_extra_info("sockname")
        self.local_port = int(sock[1]) if isinstance(sock, tuple) else 0
        self.proxy.clients.add(self)
        self.proxy.metrics.client_conns += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.clients.discard(self)
        self.proxy.metrics.client_conns -= 1
        if self.tunnel is not None:
            self.proxy.metrics.websockets -= 1
            tunnel, self.tunnel = self.tunnel, None
            tunnel.tunnel = None
            tunnel.abort()
        ex = self.current
        if ex is not None and ex.upstream is not None:
            conn = ex.upstream
            conn.client = None
            conn.abort()  # a half-done exchange leaves the connection in an unknown state
        self.current = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        self.last_io = now = time.monotonic()
        tunnel = self.tunnel
        if tunnel is not None:  # established websocket: relay the bytes as they are, nothing parsed
            tunnel.write(data)
            tunnel.route.seen = now
            return
        if self.paused & PAUSE_UPGRADE:
            self.early.append(data)
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            rest = data[exc.args[0] :]
            if rest:
                self.early.append(rest)
            self.pause_reading(PAUSE_UPGRADE)
        except HeadTooLarge:
            self.reject(431)
        except HttpParserError as exc:
            self.reject(431 if isinstance(exc.__context__, HeadTooLarge) else 400)

    def pause_writing(self) -> None:
        conn = self.tunnel or (self.current.upstream if self.current is not None else None)
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()

    def resume_writing(self) -> None:
        conn = self.tunnel or (self.current.upstream if self.current is not None else None)
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.resume_reading()

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        was = self.paused
        self.paused &= ~reason
        if was and not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- output -------------------------------------------------------------------------------------------
    def hold(self) -> None:
        if self.out is None:
            self.out = []

    def flush(self) -> None:
        out, self.out = self.out, None
        if out and self.transport is not None and not self.closed:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)

    def send(self, data: bytes | memoryview) -> None:
        out = self.out
        if out is not None:
            out.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    # -- httptools request callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = []
        self.headers = []
        self.head_size = 0
        self.head_began = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self.url.append(url)
        self.head_size += len(url)
        if self.head_size > self.proxy.settings.max_header_bytes:
            raise HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.proxy.settings.max_header_bytes:
            raise HeadTooLarge()

    def on_headers_complete(self) -> None:
        self.head_began = 0.0
        p = self.parser
        ex = Exchange(
            p.get_method(),
            b"".join(self.url),
            self.headers,
            p.get_http_version(),
            p.should_keep_alive(),
            p.should_upgrade(),
        )
        self.incoming = ex
        if self.current is None:
            self.current = ex
            self.begin(ex)
        else:
            self.queue.append(ex)
            self.pause_reading(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self.incoming
        if ex is None or ex.discard:
            return
        conn = ex.upstream
        if conn is not None and ex is self.current:
            if ex.req_chunked:  # re-chunked without copying the body into a new bytes object
                conn.writelines((b"%x\r\n" % len(body), body, b"\r\n"))
            else:
                conn.write(body)
        else:
            ex.pending.append(body)
            ex.pending_size += len(body)
            if ex.pending_size > PENDING_LIMIT:
                self.pause_reading(PAUSE_PENDING)

    def on_message_complete(self) -> None:
        ex = self.incoming
        self.incoming = None
        if ex is None:
            return
        ex.body_done = True
        if ex.discard and ex.finished:
            self.after_response(ex)
        elif ex.upstream is not None and ex is self.current:
            ex.sent_at = time.monotonic()  # the upstream timeout counts from the end of the request
            if ex.req_chunked:
                ex.upstream.write(b"0\r\n\r\n")

    # -- request handling -----------------------------------------------------------------------------------
    def begin(self, ex: Exchange) -> None:
        path = ex.path
        if path == "/_chp_healthz":
            ex.discard = True
            self.finish_local(ex, HEALTHZ)
            return
        route = self.proxy.routes.lookup(path, ex.host)
        if route is None:
            self.fail(ex, 404)
            return
        ex.route = route
        route.last_activity = time.time()
        self.proxy.pool.acquire(route, lambda conn: self.attach(ex, conn), tunnel=ex.upgrade)

    def attach(self, ex: Exchange, conn: UpstreamProtocol | None) -> None:
        if self.closed or ex is not self.current:
            if conn is not None:
                self.proxy.pool.release(conn, reusable=conn.pooled)
            return
        if conn is None:
            self.fail(ex, 503)
            return
        s = self.proxy.settings
        route = ex.route
        conn.client = self
        ex.upstream = conn
        head = request_head(
            ex,
            client_ip=self.client_ip,
            proto=self.proto,
            local_port=self.local_port,
            x_forward=s.x_forward,
            prepend=conn.target.base_path.encode("latin-1") if s.prepend_path else b"",
            strip_prefix=None if s.include_prefix else route.path,
            custom=self.proxy.hub_headers if route.path == "/" else self.proxy.custom_headers,
        )
        ex.sent_at = time.monotonic()
        if ex.pending:
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) if ex.req_chunked else c for c in ex.pending if c)
            ex.pending = []
            ex.pending_size = 0
            self.resume_reading(PAUSE_PENDING)
            head += body
        if ex.body_done and ex.req_chunked:
            head += b"0\r\n\r\n"
        conn.write(head)

    def response_head(
        self, conn: UpstreamProtocol, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        ex = self.current
        if ex is None or self.transport is None:
            return
        if status < 200 and status != 101:  # interim (100 Continue, 103): pass on, keep waiting
            self.send(
                b"HTTP/1.1 %d %s\r\n%s\r\n"
                % (status, reason, b"".join(n + b": " + v + b"\r\n" for n, v in headers))
            )
            return
        if status == 101 and ex.upgrade:
            ex.status = 101
            ex.pending = (
                [b"HTTP/1.1 101 %s\r\n" % reason] + [n + b": " + v + b"\r\n" for n, v in headers] + [b"\r\n"]
            )
            return
        ex.status = status
        ex.response_started = True
        self.last_io = time.monotonic()  # bytes towards the client count as activity (see ``done``)
        if ex.upgrade or not ex.body_done:
            ex.keep_alive = False  # refused upgrade, or early answer while the body still arrives
        self.proxy.metrics.observe_upstream(time.monotonic() - ex.sent_at)
        self.send(response_head(ex, status, reason, headers, keep_alive=ex.keep_alive))
        if ex.is_head:  # llhttp would wait for a body that never comes; end here and drop the connection
            conn.client = None
            ex.upstream = None
            self.proxy.pool.release(conn, reusable=False)
            self.done(ex)

    def response_body(self, body: bytes | memoryview) -> None:
        ex = self.current
        if ex is None or self.transport is None or ex.status < 200:
            return
        if ex.resp_chunked:
            self.send(b"%x\r\n" % len(body))
            self.send(body)
            self.send(b"\r\n")
        else:
            self.send(body)
        ex.route.last_activity = time.time()

    def response_done(self, conn: UpstreamProtocol) -> None:
        ex = self.current
        if ex is None or ex.upstream is not conn:
            return
        if not ex.response_started:  # end of an interim response
            return
        if ex.resp_chunked:
            self.send(b"0\r\n\r\n")
        if ex.status < 300:
            ex.route.last_activity = time.time()
        self.proxy.metrics.count(ex.status)
        ex.upstream = None
        self.proxy.pool.release(conn, reusable=ex.body_done and conn.keep_alive)
        self.done(ex)

    def upgrade_established(self, conn: UpstreamProtocol, rest: bytes) -> None:
        ex = self.current
        if ex is None or self.transport is None or ex.status != 101:
            conn.abort()
            return
        self.send(b"".join(ex.pending))
        if rest:
            self.send(rest)
        ex.pending = []
        ex.finished = True
        conn.client = None
        conn.tunnel = self.transport
        conn.idle_since = time.monotonic()
        self.tunnel = conn
        self.proxy.metrics.websockets += 1
        self.proxy.metrics.websockets_total += 1
        self.proxy.metrics.count(101)
        early, self.early = self.early, []
        for chunk in early:
            conn.write(chunk)
        self.resume_reading(PAUSE_UPGRADE)

    def upstream_failed(self, conn: UpstreamProtocol, bad_response: bool = False) -> None:
        ex = self.current
        if ex is None or ex.upstream is not conn:
            return
        ex.upstream = None
        self.proxy.metrics.upstream_errors += 1
        if ex.response_started:
            self.close()
            return
        if not ex.retried and not bad_response and not ex.has_body:
            route = ex.route
            multi = len(route.targets) > 1
            # A pooled connection the target had already closed, or (several targets) a target that went away
            # with the request: retry once, on a new connection, where a repeat is harmless.
            if (conn.reused and ex.method in IDEMPOTENT) or (multi and ex.method in SAFE):
                if multi and not conn.reused:
                    self.proxy.health.mark_down(conn.target, "connection lost before the response")
                ex.retried = True
                self.proxy.pool.acquire(route, lambda c: self.attach(ex, c), fresh=True)
                return
        self.fail(ex, 502 if bad_response else 503)

    # -- local answers and exchange completion --------------------------------------------------------------
    def fail(self, ex: Exchange, status: int) -> None:
        """Answer with an error (through ``--error-target`` when set); websocket requests get a bare status."""
        ex.discard = True
        ex.pending = []
        self.resume_reading(PAUSE_PENDING)
        if ex.upgrade:
            self.proxy.metrics.count(status)
            ex.keep_alive = False
            self.finish_local(
                ex,
                b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                % (status, self.proxy.errors.reason(status)),
            )
            return
        task = asyncio.get_running_loop().create_task(self._fail(ex, status))
        self.proxy.tasks.add(task)
        task.add_done_callback(self.proxy.tasks.discard)

    async def _fail(self, ex: Exchange, status: int) -> None:
        self.proxy.metrics.count(status)
        close = not ex.keep_alive or not ex.body_done
        payload = await self.proxy.errors.render(status, ex.url, close=close)
        if close:
            ex.keep_alive = False
        self.finish_local(ex, payload)

    def finish_local(self, ex: Exchange, payload: bytes) -> None:
        if self.closed or self.transport is None:
            return
        self.send(payload)
        ex.finished = True
        if ex.body_done or not ex.keep_alive:
            self.done(ex)

    def after_response(self, ex: Exchange) -> None:
        if ex is self.current:
            self.done(ex)

    def done(self, ex: Exchange) -> None:
        if ex is not self.current:
            return
        self.current = None
        # Idle time counts from the last byte in either direction: the response just ended, so the keep-alive
        # timer starts now, not at the client's last byte (which may be a slow response's duration ago).
        self.last_io = time.monotonic()
        self.draining = True
        self.unsent = 0
        if not ex.keep_alive or ex.client_close or not ex.body_done:
            self.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.current = nxt
            if not self.queue:
                self.resume_reading(PAUSE_PIPELINE)
            self.begin(nxt)
        else:
            self.resume_reading(PAUSE_PIPELINE)

    def reject(self, status: int) -> None:
        """Malformed or oversized request: answer plainly and close, whatever is in flight."""
        self.proxy.metrics.bad_requests += 1
        self.proxy.metrics.count(status)
        in_flight = self.current is not None and self.current.response_started
        if self.transport is not None and not self.closed and not in_flight:
            self.send(simple_response(status, self.proxy.errors.reason(status), close=True))
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def _socket_queue(self, request: int) -> int:
        """A byte count of the client socket's kernel queues (``SIOCOUTQ``: sent, not taken by the client yet;
        ``FIONREAD``: received, not read by this process yet); 0 where the platform or transport cannot tell."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if not request or sock is None:
            return 0
        try:
            return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0])
        except OSError:
            return 0

    def unsent_bytes(self) -> int:
        """Response bytes the client has not taken yet: in the transport's buffer and the socket's send queue."""
        if self.transport is None:
            return 0
        return self.transport.get_write_buffer_size() + self._socket_queue(SIOCOUTQ)

    def unread_bytes(self) -> int:
        """Bytes the client sent that this process has not read yet (in the socket's receive queue)."""
        return self._socket_queue(FIONREAD)

    def check_timeouts(self, now: float) -> None:
        s = self.proxy.settings
        if self.tunnel is not None:
            if s.timeout and now - self.last_io > s.timeout and now - self.tunnel.idle_since > s.timeout:
                self.close()
            return
        if self.head_began and now - self.head_began > s.request_head_timeout:
            # Slowloris: a head trickled a byte at a time keeps ``last_io`` fresh, so only a deadline on the
            # head itself ends it (as Node's headersTimeout does for CHP).
            self.head_began = 0.0
            self.reject(408)
            return
        ex = self.current
        if ex is None:
            if self.draining:
                # The last response is still being read (out of the transport's buffer and the kernel's): a
                # client busy reading is not idle, or it would lose the connection it is about to reuse.
                unsent = self.unsent_bytes()
                if unsent != self.unsent:
                    self.unsent = unsent
                    self.last_io = now
                self.draining = unsent > 0
            if now - self.last_io > s.keep_alive_timeout and not self.paused and self.unread_bytes():
                # A request arrived after this loop turn polled the socket (a busy turn can last tens of ms):
                # the client reused the connection in time. Closing now would drop that request unanswered,
                # which clients whose own idle expiry equals ours (httpx: 5 s) see as "server disconnected".
                # (Only while reading: bytes left unread on purpose are no sign of a live client.)
                self.last_io = now
                return
            if now - self.last_io > s.keep_alive_timeout:
                if self.draining and self.transport is not None:
                    self.transport.abort()  # stopped reading for a whole keep-alive timeout: close() would wait
                else:
                    self.close()
            return
        conn = ex.upstream
        if (
            conn is not None
            and ex.body_done
            and not ex.response_started
            and s.proxy_timeout
            and ex.sent_at
            and now - ex.sent_at > s.proxy_timeout
        ):
            ex.retried = True
            conn.abort()  # -> upstream_failed -> 503
            return
        if s.timeout and not ex.body_done and now - self.last_io > s.timeout:
            self.close()
