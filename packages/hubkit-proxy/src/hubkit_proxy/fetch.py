"""A tiny one-shot HTTP/1.1 GET client on asyncio streams (error pages, peer sync, health checks).

The proxy process keeps no HTTP client dependency; these calls are rare, small and bounded in size and time.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from httptools import HttpResponseParser


@dataclass
class Fetched:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Collector:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        self.done = True


async def fetch(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    seconds: float = 5.0,
    max_bytes: int = 64 * 1024 * 1024,
) -> Fetched:
    """GET ``url``; raises OSError/TimeoutError/ValueError on failure or an oversized answer."""
    return await asyncio.wait_for(_fetch(url, headers or {}, max_bytes), seconds)


async def _fetch(url: str, headers: dict[str, str], max_bytes: int) -> Fetched:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ssl.create_default_context() if tls else None
    )
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        collector = _Collector()
        parser = HttpResponseParser(collector)
        while not collector.done:
            data = await reader.read(65536)
            if not data:
                parser.feed_data(b"")  # close-delimited bodies end here
                break
            parser.feed_data(data)
            if collector.size > max_bytes:
                raise ValueError(f"answer from {url} exceeds {max_bytes} bytes")
        return Fetched(parser.get_status_code(), collector.headers, b"".join(collector.body))
    finally:
        writer.close()
