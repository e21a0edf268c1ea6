"""Readiness: poll ``{endpoint}{prefix}api`` until it answers below 500 (redirects not followed).

Backoff starts at 10 ms and doubles to 200 ms: a refused connection on loopback costs next to nothing, and a
longer cap adds up to the cap itself to every spawn (measured: ~1 s with a 1 s cap).
The caller bounds the whole wait with ``http_timeout`` and, in parallel, watches the backend's ``poll``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


async def wait_http(
    client: httpx.AsyncClient, url: str, *, first_delay: float = 0.01, max_delay: float = 0.2
) -> int:
    """Return the first status code below 500. Runs until cancelled (the caller owns the timeout)."""
    import httpx

    delay = first_delay
    while True:
        try:
            resp = await client.get(url, follow_redirects=False, timeout=max(2.0, max_delay * 2))
            if resp.status_code < 500:
                return resp.status_code
        except (httpx.TransportError, OSError):
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
