"""Periodic liveness poll of running servers: a dead one loses its route and is cleaned up."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..storage.orm import Server, ServerStatus
from . import lifecycle
from .pool import bounded_each

if TYPE_CHECKING:
    from .engine import SpawnEngine

log = logging.getLogger("hubkit.poll")


async def poll_once(engine: SpawnEngine) -> int:
    """Poll every running server once; returns how many were found dead."""
    async with engine.db() as s:
        ids = (
            (await s.execute(select(Server.id).where(Server.status == ServerStatus.RUNNING))).scalars().all()
        )
    dead = 0

    async def check(server_id: int) -> None:
        nonlocal dead
        if engine.busy(server_id):
            return
        try:
            spec, srv = await lifecycle.load_spec(engine, server_id)
            if srv.status != ServerStatus.RUNNING:
                return
            async with asyncio.timeout(engine.config.http_timeout):
                status = await engine.backend.poll(spec, dict(srv.state or {}))
        except Exception as exc:
            log.warning("polling server %s: %r", server_id, exc)
            return
        if status is not None and not engine.busy(server_id):
            dead += 1
            await lifecycle.handle_dead(engine, server_id, status)

    await bounded_each(ids, check, engine.config.adopt_concurrency)
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
