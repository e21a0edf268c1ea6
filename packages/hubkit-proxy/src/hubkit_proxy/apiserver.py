"""A small buffered HTTP/1.1 server for the REST API and /metrics (low rate, small bodies, keep-alive)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from httptools import HttpParserError, HttpRequestParser

from .wire import simple_response

log = logging.getLogger("hubkit_proxy.api")


@dataclass
class ApiRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ApiResponse:
    status: int
    body: bytes = b""
    content_type: bytes = b"text/plain; charset=utf-8"


Handler = Callable[[ApiRequest], ApiResponse]  # synchronous: route changes never wait on I/O


class _TooLarge(Exception):
    pass


class ApiProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int, extra_headers: list[tuple[bytes, bytes]]) -> None:
        self.handler = handler
        self.max_body = max_body
        self.extra = extra_headers
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url: list[bytes] = []
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (HttpParserError, _TooLarge) as exc:
            status = 413 if isinstance(exc.__context__, _TooLarge) or isinstance(exc, _TooLarge) else 400
            if self.transport is not None:
                self.transport.write(
                    simple_response(status, b"Bad request" if status == 400 else b"Too large", close=True)
                )
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.size = [], {}, [], 0

    def on_url(self, url: bytes) -> None:
        self.url.append(url)
        self.size += len(url)
        if self.size > self.max_body:
            raise _TooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self.size += len(name) + len(value)
        if self.size > self.max_body:
            raise _TooLarge()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.size += len(body)
        if self.size > self.max_body:
            raise _TooLarge()

    def on_message_complete(self) -> None:
        req = ApiRequest(
            self.parser.get_method().decode(),
            b"".join(self.url).decode("latin-1"),
            self.headers,
            b"".join(self.body),
        )
        keep_alive = self.parser.should_keep_alive()
        try:
            resp = self.handler(req)
        except Exception:
            log.exception("API handler failed for %s %s", req.method, req.url)
            resp = ApiResponse(500, b"Internal Server Error")
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            simple_response(resp.status, resp.body, resp.content_type, close=not keep_alive, extra=self.extra)
        )
        if not keep_alive:
            self.transport.close()
