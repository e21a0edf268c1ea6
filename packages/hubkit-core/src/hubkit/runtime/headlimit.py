"""A cap on the request head (request line + headers) the hub reads: 431 beyond it, as hubkit-proxy does.

uvicorn's httptools parser buffers a head of any size (a 16 MB header was read whole), which lets one client
make the hub allocate without bound. This protocol counts the bytes of each request's head as they arrive and
answers 431 (then closes) as soon as the cap is passed (within one read of it), before the application sees
anything. Without
httptools, uvicorn's h11 parser is used with its own incomplete-event limit (it answers 400 instead of 431).
"""

from __future__ import annotations

from typing import Any

REFUSAL = b"Request header fields too large\n"


def protocol_options(max_head: int) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that enforce ``max_head``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11 refuses oversized heads itself (with a 400)
        return {"http": "h11", "h11_max_incomplete_event_size": max_head}

    class HeadLimitedProtocol(HttpToolsProtocol):  # type: ignore[misc]
        _head_bytes = 0
        _in_head = True
        _refused = False

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > max_head:  # a whole oversized head that arrived in one read
                self._refuse()
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
                self._refuse()

        def _refuse(self) -> None:
            self._refused = True
            if self.transport.is_closing():
                return
            head = (
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(REFUSAL)).encode() + b"\r\n"
                b"connection: close\r\n\r\n"
            )
            self.transport.write(head + REFUSAL)
            self.transport.close()

    return {"http": HeadLimitedProtocol}
