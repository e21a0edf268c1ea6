"""One admission queue for every hub replica on a PostgreSQL database: the :class:`~.queue.Admission` of replicas.

``[spawner] concurrent_spawn_limit`` counts the spawns of the whole hub, not of one process. Each spawn that asks
for a slot is a row of ``spawn_queue``; ``admitted`` is set once it holds one of the ``limit`` slots, and the row is
deleted when the spawn leaves (done, failed, cancelled).

* **One decision at a time.** Whoever changes the queue (a new waiter, a slot freed, a waiter gone) first takes a
  transaction-level advisory lock (:data:`QUEUE_LOCK`), then in the same transaction admits the oldest waiting rows
  while fewer than ``limit`` rows hold a slot, whichever replica they belong to. ``SELECT ... FOR UPDATE SKIP
  LOCKED`` alone would not do: two transactions counting the held slots at once would both see room, and skipping
  locked rows would let a later waiter overtake an earlier one. The lock is held for one short transaction.
* **Global FIFO, positions that only go down.** A row's id is drawn while holding the lock, so id order is the order
  of arrival and of commit: a row never appears ahead of one already waiting. A waiter's position is 1 + the number
  of waiting rows with a smaller id; rows only ever leave, so it never grows.
* **No hammering.** Waiters do not query: one task per process (running only while this process has waiters)
  makes one pass (the lock and one statement) when a ``queue`` change notice arrives (every queue change sends one,
  :mod:`hubkit.storage.pg_feed`), and at the latest every ``poll`` seconds (notices lost while the listening
  connection was down). A release admits the next waiters in its own transaction, so the owners of the admitted
  rows only have to read it.
* **Dead waiters leave.** Rows record their process's instance (:mod:`.owners`). Every ``sweep`` seconds while it
  has waiters, a process checks the other owners in the queue with :meth:`~.owners.Owners.owner_alive` and deletes
  the rows of dead ones (a replica killed, or one that lost its lease and has abandoned its spawns), which frees
  their slots and their places.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..storage.access import Storage
from ..storage.changes import Change
from ..storage.locks import QUEUE_LOCK
from .owners import Owners
from .queue import PositionCallback

log = logging.getLogger("hubkit.spawn")

QUEUE_CHANGED = frozenset({Change("queue")})

_LOCK = text("SELECT pg_advisory_xact_lock(:a, :b)")
_ENQUEUE = text(
    "INSERT INTO spawn_queue (owner, enqueued) SELECT :me, timezone('utc', now()) "
    "FROM (SELECT pg_advisory_xact_lock(:a, :b)) AS locked RETURNING id"
)
_DELETE = text("DELETE FROM spawn_queue WHERE id = :id RETURNING admitted IS NULL")
_DELETE_OWNERS = text("DELETE FROM spawn_queue WHERE owner = ANY(:owners)")
_OWNERS = text("SELECT DISTINCT owner FROM spawn_queue WHERE owner <> :me")
# admit the oldest waiting rows while slots are free; then every waiting row, and this process's rows, in order
_ADMIT = text(
    """
    WITH held AS (SELECT count(*) AS n FROM spawn_queue WHERE admitted IS NOT NULL),
    nxt AS (
        SELECT id FROM spawn_queue WHERE admitted IS NULL ORDER BY id
        LIMIT (SELECT greatest(:limit - n, 0) FROM held)
    ),
    adm AS (
        UPDATE spawn_queue q SET admitted = timezone('utc', now()) FROM nxt WHERE q.id = nxt.id RETURNING q.id
    )
    SELECT q.id, q.owner = :me AS mine, q.admitted IS NOT NULL AS held, q.id IN (SELECT id FROM adm) AS now
    FROM spawn_queue q WHERE q.admitted IS NULL OR q.owner = :me ORDER BY q.id
    """
)


@dataclass
class _Waiter:
    row: int
    on_position: PositionCallback | None
    admitted: asyncio.Future[None]
    last: int = 0
    pending: asyncio.Future[None] | None = None  # a position report in flight


@dataclass
class QueueStats:
    """What the queue cost this process: statements include ``BEGIN`` and ``COMMIT``."""

    admissions: int = 0
    statements: int = 0
    transactions: int = 0
    passes: int = 0  # waiting-side passes (notice or poll)
    sweeps: int = 0
    swept: int = 0  # rows of dead owners removed
    waits: list[float] = field(default_factory=list)  # seconds from enqueue to admission (last 1000)


class PgAdmission:
    """The hub-wide admission queue (see the module docstring)."""

    def __init__(
        self, storage: Storage, owners: Owners, limit: int, *, poll: float = 1.0, sweep: float = 2.0
    ) -> None:
        if limit <= 0:
            raise ValueError("a shared queue needs a limit (without one, nothing waits)")
        self.storage = storage
        self.owners = owners
        self.limit = limit
        self.poll = poll
        self.sweep = sweep
        self.stats = QueueStats()
        self.active = 0  # slots this process holds (the hub's are counted in the database)
        self.max_active_seen = 0
        self._waiters: dict[int, _Waiter] = {}  # row id -> this process's waiter
        self._wake = asyncio.Event()
        self._early: set[int] = set()
        self._pump: asyncio.Task[None] | None = None
        self._unsubscribe = storage.changes.subscribe(self._changed)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _changed(self, changes: frozenset[Change]) -> None:
        if any(c.kind == "queue" for c in changes):
            self._wake.set()  # also with no waiter yet: one may be between its enqueue and its waiting

    # ------------------------------------------------------------------------------------------ slot

    @asynccontextmanager
    async def slot(self, on_position: PositionCallback | None = None) -> AsyncIterator[None]:
        """Hold one of the hub's slots for the body; ``on_position(n)`` is awaited with the hub-wide position while
        waiting, and again whenever it went down."""
        me = await self.owners.ready()
        t0 = time.monotonic()
        enqueue = asyncio.ensure_future(self._enqueue(me))
        try:
            row, state = await asyncio.shield(enqueue)
        except asyncio.CancelledError:  # cancelled while joining: leave again if the row was written
            with contextlib.suppress(Exception):
                row, _ = await enqueue
                await asyncio.shield(self._leave(row, me))
            raise
        try:
            if not state[0]:
                await self._wait(row, state[1], on_position)
        except BaseException:
            await asyncio.shield(self._leave(row, me))
            raise
        self.stats.admissions += 1
        self.stats.waits = [*self.stats.waits[-999:], time.monotonic() - t0]
        self.active += 1
        self.max_active_seen = max(self.max_active_seen, self.active)
        try:
            yield
        finally:
            self.active -= 1
            await asyncio.shield(self._leave(row, me))

    async def _enqueue(self, me: str) -> tuple[int, tuple[bool, int]]:
        async with self.storage.tx() as s:
            row = int((await self._run(s, _ENQUEUE, me=me, a=QUEUE_LOCK[0], b=QUEUE_LOCK[1])).scalar_one())
            states = await self._admit(s, me)
            await self._commit(s)
        self._settle(states)
        return row, states.get(row, (False, 0))

    async def _wait(self, row: int, position: int, on_position: PositionCallback | None) -> None:
        w = _Waiter(row, on_position, asyncio.get_running_loop().create_future())
        self._waiters[row] = w
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name="hubkit-shared-queue")
        if row in self._early:  # admitted by a pass that ran before this waiter was registered
            self._early.discard(row)
            w.admitted.set_result(None)
        try:
            if on_position is not None and position and not w.admitted.done():
                w.last = position
                await on_position(position)
            await w.admitted
            if w.pending is not None:  # the last position report lands before whatever follows
                await w.pending
        finally:
            self._waiters.pop(row, None)

    async def _leave(self, row: int, me: str) -> None:
        """Delete this spawn's row (a slot freed, or a place in the line) and admit whoever is next. Retried a few
        times; if the database stays away, the lease goes with it and the row is swept as a dead owner's."""
        for delay in (0.2, 0.5, 1.0, 2.0, None):
            try:
                async with self.storage.tx() as s:
                    await self._run(s, _LOCK, a=QUEUE_LOCK[0], b=QUEUE_LOCK[1])
                    was_waiting = (await self._run(s, _DELETE, id=row)).scalar_one_or_none()
                    states = await self._admit(s, me, moved=bool(was_waiting))
                    await self._commit(s)
                self._early.discard(row)
                self._settle(states)
                return
            except Exception as exc:
                if delay is None:
                    log.error("admission queue: could not leave (row %s): %r", row, exc)
                    return
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------------------------------ statements

    async def _run(self, s: AsyncSession, stmt: TextClause, **params: object) -> Any:
        if not s.in_transaction():
            self.stats.statements += 1  # BEGIN
        self.stats.statements += 1
        return await s.execute(stmt, params)

    async def _commit(self, s: AsyncSession) -> None:
        self.stats.statements += 1
        self.stats.transactions += 1
        await s.commit()

    async def _admit(self, s: AsyncSession, me: str, *, moved: bool = False) -> dict[int, tuple[bool, int]]:
        """Admit while slots are free (the caller holds the lock); per row of this process: (admitted, position).
        Sends a notice in this transaction when another process's rows were admitted, or (``moved``: a waiting row
        left) when others wait, whose positions went down."""
        rows = (await self._run(s, _ADMIT, limit=self.limit, me=me)).all()
        states: dict[int, tuple[bool, int]] = {}
        position = 0
        tell = False
        for row_id, mine, held, now in rows:
            admitted = held or now
            if not admitted:
                position += 1
            if mine:
                states[int(row_id)] = (bool(admitted), 0 if admitted else position)
            elif now or (moved and not admitted):
                tell = True
        if tell:
            self.stats.statements += 1  # pg_notify, staged by the change feed in this transaction
            await s.run_sync(self._notify)
        return states

    def _notify(self, sync: Session) -> None:
        """The ``queue`` notice for the other processes, in this transaction. Not published to this process's own
        listeners: its waiters were settled from the transaction's result."""
        self.storage.changes.stage(sync, QUEUE_CHANGED)

    def _settle(self, states: dict[int, tuple[bool, int]]) -> None:
        """Hand the outcome of a pass to this process's waiters: admitted ones go, the others learn their position
        (only when it went down)."""
        for row, (admitted, position) in states.items():
            w = self._waiters.get(row)
            if w is None:
                if admitted:
                    self._early.add(row)  # admitted between its enqueue and its waiting (see _wait)
                continue
            if w.admitted.done():
                continue
            if admitted:
                w.admitted.set_result(None)
            elif w.on_position is not None and 0 < position < w.last:
                if w.pending is not None and not w.pending.done():
                    continue  # the next pass reports it
                w.last = position
                w.pending = asyncio.ensure_future(w.on_position(position))

    # ------------------------------------------------------------------------------------------ waiting side

    async def _run_pump(self) -> None:
        swept = time.monotonic()
        while self._waiters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            self._wake.clear()
            if not self._waiters:
                break
            try:
                if time.monotonic() - swept >= self.sweep:
                    swept = time.monotonic()
                    await self._sweep()
                await self._pass()
            except Exception as exc:  # the database away for a moment: try again on the next wake or poll
                log.warning("admission queue: pass failed: %r", exc)

    async def _pass(self) -> None:
        me = self.owners.instance
        if not me:
            return  # no lease right now: this process's spawns are being abandoned
        self.stats.passes += 1
        async with self.storage.tx() as s:
            await self._run(s, _LOCK, a=QUEUE_LOCK[0], b=QUEUE_LOCK[1])
            states = await self._admit(s, me)
            await self._commit(s)
        self._settle(states)

    async def _sweep(self) -> None:
        """Remove the rows of owners whose lease is gone (checked on the lease connection, 2 statements each)."""
        me = self.owners.instance
        self.stats.sweeps += 1
        async with self.storage.session() as s:
            owners = [str(o) for o in (await self._run(s, _OWNERS, me=me)).scalars()]
            await self._commit(s)
        dead = [o for o in owners if not await self.owners.owner_alive(o)]
        self.stats.statements += 2 * len(owners)
        if not dead:
            return
        async with self.storage.tx() as s:
            await self._run(s, _LOCK, a=QUEUE_LOCK[0], b=QUEUE_LOCK[1])
            gone = (await self._run(s, _DELETE_OWNERS, owners=dead)).rowcount
            states = await self._admit(s, me, moved=bool(gone))
            await self._commit(s)
        self.stats.swept += int(gone or 0)
        if gone:
            log.warning(
                "admission queue: removed %d place(s) of hub process(es) that stopped: %s", gone, dead
            )
        self._settle(states)

    async def close(self) -> None:
        self._unsubscribe()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
