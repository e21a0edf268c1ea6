"""Progress events: stored per spawn (``spawn_events``) so a stream can be replayed later, and fanned out
live to whoever is watching in this process. A stream ends with the spawn's ``ready`` or ``failed`` event.

Live fan-out is in-process (:meth:`ProgressStore.publish`); a stream whose spawn is driven elsewhere falls back
to the stored rows. Hub replicas will put a notification channel (PostgreSQL ``LISTEN/NOTIFY``) behind
``publish`` and the subscription in :meth:`ProgressStore.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NotFound
from ..interfaces import Phase, ProgressEvent
from ..storage.access import Storage
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
    def __init__(self, storage: Storage, is_live: Callable[[int], bool]) -> None:
        self.storage = storage
        self.is_live = is_live  # is this spawn still being driven by this hub process?
        self._subs: dict[int, list[asyncio.Queue[Item]]] = defaultdict(list)
        self._pending: list[tuple[int, ProgressEvent, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, session: AsyncSession, spawn_id: int, event: ProgressEvent) -> SpawnEvent:
        """Stage an event in the caller's transaction; call :meth:`publish` after the commit."""
        row = to_row(spawn_id, event)
        session.add(row)
        return row

    def publish(self, spawn_id: int, seq: int, event: ProgressEvent) -> None:
        for q in self._subs.get(spawn_id, ()):
            q.put_nowait((seq, event))

    async def emit(self, spawn_id: int, event: ProgressEvent) -> int:
        """Store and publish one event. Concurrent emits share one transaction (group commit): with hundreds
        of queued spawns reporting positions, one commit per event would make the database the bottleneck."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((spawn_id, event, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="hubkit-progress-writer")
        return await asyncio.shield(fut)

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception:
                if len(batch) == 1:
                    continue
                # one bad event (its spawn deleted meanwhile) must not fail the others: write them one by one
                for item in batch:
                    with contextlib.suppress(Exception):
                        await self._write([item])

    async def _write(self, batch: list[tuple[int, ProgressEvent, asyncio.Future[int]]]) -> None:
        try:
            async with self.storage.tx() as session:
                rows = [self.add(session, spawn_id, event) for spawn_id, event, _f in batch]
                await session.commit()
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, Exception):
                for _s, _e, f in batch:
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            raise
        for row, (spawn_id, event, f) in zip(rows, batch, strict=True):
            self.publish(spawn_id, row.id, event)
            if not f.done():
                f.set_result(row.id)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=5)

    async def stored(self, spawn_id: int, after: int = 0) -> list[Item]:
        async with self.storage.session() as session:
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
            async with self.storage.session() as session:
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
