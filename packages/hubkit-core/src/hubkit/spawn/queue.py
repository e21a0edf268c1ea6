"""A FIFO admission queue with a concurrency limit.

JupyterHub answers 429 once ``concurrent_spawn_limit`` is reached; hubkit queues instead, strictly first come
first served, and tells each waiter its position. Positions only ever decrease: nobody overtakes, and a
waiter leaving (cancelled) only moves those behind it forward.

Waiters do not poll: each awaits one future. A single reporter task, running only while someone waits,
recomputes every position at most every ``update_interval`` seconds and reports those that changed, so a
thousand waiters cost one pass per interval rather than a thousand wake-ups per admission.

The engine only sees the :class:`Admission` protocol: hub replicas on PostgreSQL share one queue in the database
instead (:mod:`.pg_queue`); this in-process one serves a single hub process (SQLite) and hubs without a limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

PositionCallback = Callable[[int], Awaitable[None]]


class Admission(Protocol):
    """Admits spawns one slot at a time, first come first served."""

    @property
    def waiting(self) -> int: ...

    def slot(self, on_position: PositionCallback | None = None) -> AbstractAsyncContextManager[None]:
        """Hold a slot for the body; ``on_position(n)`` is awaited while waiting, with positions that only
        ever decrease."""
        ...

    async def close(self) -> None:
        """The hub stops (every spawn was cancelled first): end any background task."""
        ...


class _Waiter:
    __slots__ = ("admitted", "last", "on_position", "pending")

    def __init__(self, on_position: PositionCallback | None) -> None:
        self.admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_position = on_position
        self.last = 0
        self.pending: asyncio.Future[None] | None = None  # a position report in flight


class AdmissionQueue:
    def __init__(self, limit: int, *, update_interval: float = 0.5) -> None:
        self.limit = limit  # 0: no limit
        self.update_interval = update_interval
        self.active = 0
        self.max_active_seen = 0
        self._waiters: deque[_Waiter] = deque()
        self._dirty = False
        self._reporter: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _has_room(self) -> bool:
        return self.limit <= 0 or self.active < self.limit

    def _admit(self) -> None:
        self.active += 1
        self.max_active_seen = max(self.max_active_seen, self.active)

    def _release(self) -> None:
        self.active -= 1
        while self._waiters and self._has_room():
            w = self._waiters.popleft()
            if not w.admitted.done():
                self._admit()
                w.admitted.set_result(None)
        self._dirty = True

    @asynccontextmanager
    async def slot(self, on_position: PositionCallback | None = None) -> AsyncIterator[None]:
        """Hold one admission slot for the body. ``on_position(n)`` is awaited with the 1-based queue
        position when the caller has to wait, and again whenever it improved."""
        if not self._waiters and self._has_room():
            self._admit()
        else:
            await self._wait(on_position)
        try:
            yield
        finally:
            self._release()

    async def _wait(self, on_position: PositionCallback | None) -> None:
        w = _Waiter(on_position)
        self._waiters.append(w)
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self._report(), name="hubkit-queue-positions")
        try:
            if on_position is not None:
                w.last = len(self._waiters) if not w.admitted.done() else 1
                await on_position(w.last)
            await w.admitted
            if w.pending is not None:  # the last position report lands before whatever follows
                await w.pending
        except BaseException:
            if w.admitted.done() and not w.admitted.cancelled():
                self._release()  # admitted while being cancelled: hand the slot on
            else:
                w.admitted.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(w)
                self._dirty = True
            raise

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter

    async def _report(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.update_interval)
            if not self._dirty:
                continue
            self._dirty = False
            for i, w in enumerate(list(self._waiters)):
                pos = i + 1
                if w.on_position is None or w.admitted.done() or pos >= w.last:
                    continue
                if w.pending is not None and not w.pending.done():
                    self._dirty = True  # report again next round
                    continue
                w.last = pos
                w.pending = asyncio.ensure_future(w.on_position(pos))
