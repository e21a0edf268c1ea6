"""Readiness: poll ``{endpoint}{prefix}api`` until it answers below 500 (redirects not followed).

Backoff starts at 10 ms and doubles to 200 ms: a refused connection on loopback costs next to nothing, and a
longer cap adds up to the cap itself to every spawn (measured: ~1 s with a 1 s cap).
The caller bounds the whole wait with ``http_timeout`` and, in parallel, watches the backend's ``poll``.

A plain ``http://`` endpoint is probed with one request on a fresh connection, reading only the status line and
headers: a full HTTP client cost a spawn wave more hub CPU than all but the database (profiled). ``https://``
endpoints go through the hub's httpx client (certificates, TLS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx

HEAD_LIMIT = 64 * 1024


async def probe_http(url: str, timeout: float) -> int | None:  # noqa: ASYNC109 (one bounded probe)
    """One ``GET`` over plain HTTP/1.1: the status code, or ``None`` when nothing (valid) answered."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: hubkit\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, UnicodeError):
        return None
    finally:
        if writer is not None:
            writer.close()
    line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        return None
    return int(line[1])


async def wait_http(
    client: Callable[[], httpx.AsyncClient], url: str, *, first_delay: float = 0.01, max_delay: float = 0.2
) -> int:
    """Return the first status code below 500. Runs until cancelled (the caller owns the timeout).
    ``client`` gives the httpx client for ``https://`` endpoints (made only when one is needed)."""
    delay = first_delay
    plain = urlsplit(url).scheme == "http"
    while True:
        status: int | None
        if plain:
            status = await probe_http(url, max(2.0, max_delay * 2))
        else:
            status = await _httpx_status(client(), url, max(2.0, max_delay * 2))
        if status is not None and status < 500:
            return status
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


async def _httpx_status(client: httpx.AsyncClient, url: str, timeout: float) -> int | None:  # noqa: ASYNC109
    import httpx

    try:
        resp = await client.get(url, follow_redirects=False, timeout=timeout)
    except (httpx.TransportError, OSError):
        return None
    return resp.status_code
