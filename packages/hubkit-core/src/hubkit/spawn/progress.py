"""Progress events: stored per spawn (``spawn_events``) so a stream can be replayed later, and fanned out
live to whoever is watching. A stream ends with the spawn's ``ready`` or ``failed`` event."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..errors import NotFound
from ..interfaces import Phase, ProgressEvent
from ..storage.orm import Spawn, SpawnEvent

TERMINAL = frozenset({Phase.READY, Phase.FAILED})
Item = tuple[int, ProgressEvent]


def to_row(spawn_id: int, event: ProgressEvent) -> SpawnEvent:
    return SpawnEvent(
        spawn_id=spawn_id,
        phase=event.phase.value,
        progress=event.progress,
        message=event.message,
        reason_code=event.reason_code,
        queue_position=event.queue_position,
        detail=dict(event.detail),
    )


def from_row(row: SpawnEvent) -> ProgressEvent:
    return ProgressEvent(
        phase=Phase(row.phase),
        message=row.message,
        progress=row.progress,
        reason_code=row.reason_code,
        queue_position=row.queue_position,
        detail=dict(row.detail or {}),
    )


class ProgressStore:
    def __init__(self, db: async_sessionmaker[AsyncSession], is_live: Callable[[int], bool]) -> None:
        self.db = db
        self.is_live = is_live  # is this spawn still being driven by this hub process?
        self._subs: dict[int, list[asyncio.Queue[Item]]] = defaultdict(list)

    def add(self, session: AsyncSession, spawn_id: int, event: ProgressEvent) -> SpawnEvent:
        """Stage an event in the caller's transaction; call :meth:`publish` after the commit."""
        row = to_row(spawn_id, event)
        session.add(row)
        return row

    def publish(self, spawn_id: int, seq: int, event: ProgressEvent) -> None:
        for q in self._subs.get(spawn_id, ()):
            q.put_nowait((seq, event))

    async def emit(self, spawn_id: int, event: ProgressEvent) -> int:
        async with self.db() as session:
            row = self.add(session, spawn_id, event)
            await session.commit()
        self.publish(spawn_id, row.id, event)
        return row.id

    async def stored(self, spawn_id: int, after: int = 0) -> list[Item]:
        async with self.db() as session:
            rows = (
                await session.execute(
                    select(SpawnEvent)
                    .where(SpawnEvent.spawn_id == spawn_id, SpawnEvent.id > after)
                    .order_by(SpawnEvent.id)
                )
            ).scalars()
            return [(r.id, from_row(r)) for r in rows]

    async def events(self, spawn_id: int, *, after: int = 0) -> AsyncIterator[Item]:
        q: asyncio.Queue[Item] = asyncio.Queue()
        self._subs[spawn_id].append(q)  # subscribe first so nothing falls between replay and live
        try:
            async with self.db() as session:
                if await session.get(Spawn, spawn_id) is None:
                    raise NotFound(f"no spawn {spawn_id}")
            last = after
            for seq, event in await self.stored(spawn_id, after):
                last = seq
                yield seq, event
                if event.phase in TERMINAL:
                    return
            while True:
                if q.empty() and not self.is_live(spawn_id):
                    # finished (or abandoned by an earlier hub process) without a live terminal event
                    for seq, event in await self.stored(spawn_id, last):
                        yield seq, event
                    return
                try:
                    seq, event = await asyncio.wait_for(q.get(), timeout=1.0)
                except TimeoutError:
                    continue
                if seq <= last:
                    continue
                last = seq
                yield seq, event
                if event.phase in TERMINAL:
                    return
        finally:
            subs = self._subs.get(spawn_id)
            if subs is not None:
                subs.remove(q)
                if not subs:
                    del self._subs[spawn_id]
