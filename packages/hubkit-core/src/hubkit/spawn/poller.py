"""Periodic liveness poll of running servers: a dead one loses its route and is cleaned up."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..storage.orm import ServerStatus
from . import lifecycle
from .pool import bounded_each

if TYPE_CHECKING:
    from .engine import SpawnEngine

log = logging.getLogger("hubkit.poll")


async def poll_once(engine: SpawnEngine) -> int:
    """Poll every running server once; returns how many were found dead."""
    from .adopt import LiveRow, live_servers

    rows = await live_servers(engine, (ServerStatus.RUNNING,))
    dead = 0

    async def check(row: LiveRow) -> None:
        nonlocal dead
        spec, srv = row
        if engine.busy(srv.id) or (srv.backend and srv.backend != engine.backend_name):
            return
        try:
            async with asyncio.timeout(engine.config.http_timeout):
                status = await engine.backend.poll(spec, dict(srv.state or {}))
        except Exception as exc:
            log.warning("polling %s: %r", spec.full_name, exc)
            return
        if status is not None and not engine.busy(srv.id):
            dead += 1
            await lifecycle.handle_dead(engine, srv.id, status)

    await bounded_each(rows, check, engine.config.adopt_concurrency)
    return dead


async def poll_forever(engine: SpawnEngine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await poll_once(engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("poll round failed")
