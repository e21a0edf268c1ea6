"""Run the culler: every ``[culler] every`` seconds read running servers and stop the idle ones."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..storage.orm import Server, ServerStatus, User
from .policy import Candidate, Decision, decide

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..services.context import ServiceContext

log = logging.getLogger("hubkit.culler")


async def candidates(ctx: ServiceContext) -> list[Candidate]:
    async with ctx.storage.session() as session:
        rows = (
            await session.execute(
                select(Server, User)
                .join(User, User.id == Server.user_id)
                .where(Server.status == ServerStatus.RUNNING)
                .options(selectinload(User.groups))
            )
        ).all()
        return [
            Candidate(
                user=u.name,
                server=s.name,
                started=s.started,
                last_activity=s.last_activity,
                activity=dict(s.activity or {}),
                groups=tuple(g.name for g in u.groups),
            )
            for s, u in rows
        ]


async def cull_once(
    ctx: ServiceContext, metrics: Metrics | None = None, *, now: datetime | None = None
) -> list[Decision]:
    now = now or datetime.now(UTC)
    cfg = ctx.settings.culler
    decisions = [d for c in await candidates(ctx) if (d := decide(cfg, c, now)) is not None]
    sem = asyncio.Semaphore(10)

    async def stop(d: Decision) -> None:
        async with sem:
            log.info("culling %s/%s: %s", d.user, d.server, d.detail)
            try:
                await ctx.spawns.stop(d.user, d.server, reason=f"culled: {d.detail}")
            except Exception:
                log.exception("culling %s/%s failed", d.user, d.server)
                return
            if metrics is not None:
                metrics.culled.labels(why=d.why).inc()

    await asyncio.gather(*(stop(d) for d in decisions))
    return decisions


async def run_forever(ctx: ServiceContext, metrics: Metrics | None = None) -> None:
    every = ctx.settings.culler.every
    while True:
        await asyncio.sleep(every)
        try:
            await cull_once(ctx, metrics)
        except Exception:
            log.exception("culler round failed")
