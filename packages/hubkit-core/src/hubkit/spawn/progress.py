"""Progress events: stored per spawn (``spawn_events``) so a stream can be replayed later, and fanned out
live to whoever is watching in this process. A stream ends with the spawn's ``ready`` or ``failed`` event.

Live fan-out is in-process (:meth:`ProgressStore.publish`). A stream whose spawn this process is not driving
reads the stored rows: on SQLite (one hub process) once, since nobody else drives it; on PostgreSQL, where
another hub replica may be driving it, every time a change notice (:mod:`hubkit.storage.changes`, kind
``spawn``) says that spawn has new events, until its terminal event or until the spawn has finished. The
writer stages that notice in the transaction that stores the events, so a replica that hears it can read
them; events of one spawn are written one transaction after another, so reading the rows after the last one
sent never skips one, and the event ids (the SSE ``id:``) keep each event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NotFound
from ..interfaces import Phase, ProgressEvent
from ..storage.access import Storage
from ..storage.capture import stage
from ..storage.changes import Change
from ..storage.orm import Spawn, SpawnEvent, table_of
from .statements import inserted_id

TERMINAL = frozenset({Phase.READY, Phase.FAILED})
Item = tuple[int, ProgressEvent]
WAKE = None  # put in a stream's queue: the stored rows may hold new events (written by another process)
REMOTE_RECHECK = 5.0  # seconds: a stream of a spawn driven elsewhere reads its rows at least this often
EVENTS = table_of(SpawnEvent)
NEW_EVENT = insert(EVENTS)  # built once (the values are parameters)


def values_of(spawn_id: int, event: ProgressEvent) -> dict[str, Any]:
    return {
        "spawn_id": spawn_id,
        "time": datetime.now(UTC),
        "phase": event.phase.value,
        "progress": event.progress,
        "message": event.message,
        "reason_code": event.reason_code,
        "queue_position": event.queue_position,
        "detail": dict(event.detail),
    }


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
        self._subs: dict[int, list[asyncio.Queue[Item | None]]] = defaultdict(list)
        self._pending: list[tuple[int, ProgressEvent, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.shared = not storage.is_sqlite  # other hub processes may write and read these events
        if self.shared:
            storage.changes.subscribe(self._changed)

    async def add(self, session: AsyncSession, spawn_id: int, event: ProgressEvent) -> int:
        """Write an event in the caller's transaction (one ``INSERT``) and return its sequence number; call
        :meth:`publish` with it after the commit."""
        seq = inserted_id(await session.execute(NEW_EVENT, values_of(spawn_id, event)))
        await self._tell_others(session, {spawn_id})
        return seq

    async def _tell_others(self, session: AsyncSession, spawn_ids: set[int]) -> None:
        """A change notice in the writing transaction, for streams on other hub processes."""
        if self.shared:
            changes = {Change("spawn", i) for i in spawn_ids}
            await session.run_sync(lambda sync: stage(sync, changes))

    def _changed(self, changes: frozenset[Change]) -> None:
        for change in changes:
            if change.kind != "spawn":
                continue
            if change.key is None:  # every spawn (e.g. notices may have been lost)
                queues = [q for subs in self._subs.values() for q in subs]
            else:
                queues = list(self._subs.get(int(change.key), ()))
            for q in queues:
                q.put_nowait(WAKE)

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
                if len(batch) == 1:
                    spawn_id, event, _f = batch[0]
                    seqs = [await self.add(session, spawn_id, event)]
                else:  # one multi-row INSERT ... RETURNING, ids in the order given
                    result = await session.execute(
                        insert(EVENTS).returning(EVENTS.c.id, sort_by_parameter_order=True),
                        [values_of(spawn_id, event) for spawn_id, event, _f in batch],
                    )
                    seqs = [int(i) for i in result.scalars()]
                    await self._tell_others(session, {spawn_id for spawn_id, _e, _f in batch})
                await session.commit()
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, Exception):
                for _s, _e, f in batch:
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            raise
        for seq, (spawn_id, event, f) in zip(seqs, batch, strict=True):
            self.publish(spawn_id, seq, event)
            if not f.done():
                f.set_result(seq)

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

    async def finished(self, spawn_id: int) -> bool:
        async with self.storage.session() as session:
            spawn = await session.get(Spawn, spawn_id)
            return spawn is None or spawn.finished is not None

    async def events(self, spawn_id: int, *, after: int = 0) -> AsyncIterator[Item]:
        q: asyncio.Queue[Item | None] = asyncio.Queue()
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
                item: Item | None = WAKE
                if q.empty() and not self.is_live(spawn_id):
                    if not self.shared:
                        # finished (or abandoned by an earlier hub process) without a live terminal event
                        for seq, event in await self.stored(spawn_id, last):
                            yield seq, event
                        return
                    # driven by another hub process, or over: the rows tell (finished read first, so rows
                    # written before it finished are all seen), and a notice wakes this stream for new ones
                    over = await self.finished(spawn_id)
                    for seq, event in await self.stored(spawn_id, last):
                        last = seq
                        yield seq, event
                        if event.phase in TERMINAL:
                            return
                    if over:
                        return
                    with contextlib.suppress(TimeoutError):
                        item = await asyncio.wait_for(q.get(), timeout=REMOTE_RECHECK)
                else:
                    with contextlib.suppress(TimeoutError):
                        item = await asyncio.wait_for(q.get(), timeout=1.0)
                if item is WAKE:
                    continue
                seq, event = item
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
