"""Stops asked for on another replica: every hub process looks, twice a second, for a stop mark
(:func:`~.ownership.request_stop`) on the spawns it drives, and cancels those the way a local stop would.

Runs on every replica (not a singleton duty), and only where several processes share the database.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from ..storage.orm import Spawn
from .context import Spawning
from .ownership import STOP_REQUESTED

log = logging.getLogger("hubkit.spawn")


async def cancel_requested(sp: Spawning) -> int:
    """Cancel this process's spawns that carry a stop mark; how many."""
    driving = sp.inflight.driving()
    if not driving:
        return 0
    async with sp.storage.session() as s:
        marked = (
            await s.execute(
                select(Spawn.id).where(
                    Spawn.id.in_(list(driving)), Spawn.outcome.is_(None), Spawn.reason_code == STOP_REQUESTED
                )
            )
        ).scalars()
        ids = list(marked)
    for spawn_id in ids:
        log.info("spawn %d: stop requested on another replica", spawn_id)
        await sp.inflight.cancel_spawn(driving[spawn_id])
    return len(ids)


async def watch_forever(sp: Spawning, interval: float = 0.5) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await cancel_requested(sp)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("looking for stop requests failed")
