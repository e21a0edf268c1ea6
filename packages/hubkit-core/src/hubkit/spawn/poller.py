"""Periodic liveness poll of running servers: a dead one loses its route and is cleaned up."""

from __future__ import annotations

import asyncio
import logging

from ..storage.orm import ServerStatus
from .context import Spawning
from .pool import bounded_each
from .records import LiveRow, live_servers
from .stopping import handle_dead

log = logging.getLogger("hubkit.poll")


async def poll_once(sp: Spawning) -> int:
    """Poll every running server once; returns how many were found dead."""
    rows = await live_servers(sp, (ServerStatus.RUNNING,))
    dead = 0
    backend = sp.parts.backend

    async def check(row: LiveRow) -> None:
        nonlocal dead
        spec, srv = row
        if sp.inflight.busy(srv.id) or (srv.backend and srv.backend != sp.policy.backend_name):
            return
        try:
            async with asyncio.timeout(sp.policy.config.http_timeout):
                status = await backend.poll(spec, dict(srv.state or {}))
        except Exception as exc:
            log.warning("polling %s: %r", spec.full_name, exc)
            return
        if status is not None and not sp.inflight.busy(srv.id):
            dead += 1
            await handle_dead(sp, srv.id, status)

    await bounded_each(rows, check, sp.policy.config.adopt_concurrency)
    return dead


async def poll_forever(sp: Spawning, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await poll_once(sp)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("poll round failed")
