"""Bounds on what a client can make the hub's HTTP server hold before the application sees a request.

uvicorn's httptools parser buffers a request head of any size (a 16 MB header was read whole), appends every
trailer field of a chunked body to the request's header list (200 MB of trailers on one connection), and waits
forever for a head that never completes or a connection that sends nothing (slowloris). This protocol:

* counts the bytes of each request head as they arrive and answers **431** (then closes) as soon as the cap is
  passed, within one read of it;
* counts trailer fields against the same cap and never stores them;
* closes a connection whose request head is not complete ``head_timeout`` seconds after the connection opened
  or the head began (**408**), as Node's ``headersTimeout`` does for CHP.

Without httptools, uvicorn's h11 parser is used with its own incomplete-event limit (it answers 400 instead of
431) and no head deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

REFUSAL = b"Request header fields too large\n"
TOO_SLOW = b"Request head not received in time\n"


def _reply(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


def protocol_options(max_head: int, head_timeout: float = 20.0) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that enforce ``max_head`` bytes and ``head_timeout`` seconds."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11 refuses oversized heads itself (with a 400)
        return {"http": "h11", "h11_max_incomplete_event_size": max_head}

    class HeadLimitedProtocol(HttpToolsProtocol):  # type: ignore[misc]
        _head_bytes = 0
        _trailer_bytes = 0
        _in_head = True
        _refused = False
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = asyncio.get_running_loop().call_later(head_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._in_head and not self._refused:
                self._refuse(b"408 Request Timeout", TOO_SLOW)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._trailer_bytes = 0
            self._arm()

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._in_head:
                super().on_header(name, value)
                return
            # a trailer field of a chunked body: counted against the cap, never kept
            self._trailer_bytes += len(name) + len(value) + 4
            if self._trailer_bytes > max_head:
                self._refuse(b"431 Request Header Fields Too Large", REFUSAL)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._disarm()
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > max_head:  # a whole oversized head that arrived in one read
                self._refuse(b"431 Request Header Fields Too Large", REFUSAL)
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self._in_head = True
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            # a head still incomplete after this read counts it; refused as soon as the cap is passed, so a
            # client cannot make the parser buffer megabytes of header
            counting = self._in_head
            if counting:
                self._head_bytes += len(data)
            super().data_received(data)
            if counting and self._in_head and self._head_bytes > max_head:
                self._refuse(b"431 Request Header Fields Too Large", REFUSAL)

        def _refuse(self, status: bytes, body: bytes) -> None:
            self._refused = True
            self._disarm()
            if self.transport.is_closing():
                return
            self.transport.write(_reply(status, body))
            self.transport.close()

    return {"http": HeadLimitedProtocol}
