"""A FIFO admission queue with a concurrency limit.

JupyterHub answers 429 once ``concurrent_spawn_limit`` is reached; hubkit queues instead, strictly first come
first served, and tells each waiter its position. Positions only ever decrease: nobody overtakes, and a
waiter leaving (cancelled) only moves those behind it forward.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

PositionCallback = Callable[[int], Awaitable[None]]


class _Waiter:
    __slots__ = ("admitted",)

    def __init__(self) -> None:
        self.admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class AdmissionQueue:
    def __init__(self, limit: int, *, update_interval: float = 0.5) -> None:
        self.limit = limit  # 0: no limit
        self.update_interval = update_interval
        self.active = 0
        self.max_active_seen = 0
        self._waiters: deque[_Waiter] = deque()
        self._changed = asyncio.Event()

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
        self._wake()

    def _wake(self) -> None:
        # every waiter re-reads its position; a fresh Event so late sleepers are not woken by an old one
        self._changed.set()
        self._changed = asyncio.Event()

    @asynccontextmanager
    async def slot(self, on_position: PositionCallback | None = None) -> AsyncIterator[None]:
        """Hold one admission slot for the body. ``on_position(n)`` is awaited with the 1-based queue
        position when the caller has to wait, and again whenever it improves (at most every
        ``update_interval`` seconds)."""
        if not self._waiters and self._has_room():
            self._admit()
        else:
            await self._wait(on_position)
        try:
            yield
        finally:
            self._release()

    async def _wait(self, on_position: PositionCallback | None) -> None:
        w = _Waiter()
        self._waiters.append(w)
        last = 0
        try:
            while not w.admitted.done():
                pos = self._waiters.index(w) + 1
                if on_position is not None and pos != last:
                    last = pos
                    await on_position(pos)
                if w.admitted.done():
                    break
                changed = self._changed
                waiter = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait([w.admitted, waiter], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                finally:
                    waiter.cancel()
                if not w.admitted.done() and self.update_interval > 0:
                    await asyncio.wait({w.admitted}, timeout=self.update_interval)
        except BaseException:
            if w.admitted.done() and not w.admitted.cancelled():
                self._release()  # admitted while being cancelled: hand the slot on
            else:
                w.admitted.cancel()
                try:
                    self._waiters.remove(w)
                except ValueError:
                    pass
                self._wake()
            raise
