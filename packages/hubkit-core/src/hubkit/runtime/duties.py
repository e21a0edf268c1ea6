"""A hub's background duties (re-adoption then route reconciling, liveness polling, the idle culler, managed
services), run as tasks.

Each duty runs while its :class:`Leadership` holds it. On SQLite the one hub process holds every duty
(:class:`SoleProcess`); on PostgreSQL each duty is a lease (:mod:`.leases`, an advisory lock) so that it runs on
exactly one of the replicas sharing the database and moves to another when its holder dies or loses its
connection (:func:`run_held` then waits for the lease again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("hubkit")


@dataclass(frozen=True)
class Duty:
    name: str
    run: Callable[[], Awaitable[None]]  # runs until cancelled
    everywhere: bool = False  # not a singleton: every hub process runs it, without a lease


class LeadershipLost(Exception):
    """The lease behind a duty is gone (its holder's database connection failed): the duty stops here and this
    process competes for it again."""


class Leadership(Protocol):
    def hold(self, duty: str) -> AbstractAsyncContextManager[None]:
        """Enter once this process may run ``duty``; leave (cancelling the duty, without an error) when it may
        no longer."""
        ...

    async def close(self) -> None:
        """Give up every lease (the hub stops)."""
        ...


class SoleProcess:
    """The only hub process: it holds every duty at once."""

    @asynccontextmanager
    async def hold(self, duty: str) -> AsyncIterator[None]:
        yield

    async def close(self) -> None:
        pass


class Duties:
    def __init__(self, leadership: Leadership | None = None) -> None:
        self.leadership: Leadership = leadership or SoleProcess()
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, duties: list[Duty]) -> None:
        """Start every duty. Idempotent: a second call while they run does nothing."""
        if self._tasks:
            return
        for duty in duties:
            self._tasks.append(asyncio.create_task(self._run(duty), name=f"hubkit-{duty.name}"))

    async def _run(self, duty: Duty) -> None:
        if duty.everywhere:
            await duty.run()
        else:
            await run_held(self.leadership, duty)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s failed", t.get_name())
        self._tasks.clear()

    async def close(self) -> None:
        await self.stop()
        await self.leadership.close()


async def run_held(leadership: Leadership, duty: Duty, *, pause: float = 0.5) -> None:
    """Run ``duty`` whenever ``leadership`` holds it, until it returns or this task is cancelled: a lease lost
    mid-run stops the duty, and this process waits for the lease again."""
    while True:
        finished = False
        try:
            async with leadership.hold(duty.name):
                await duty.run()
                finished = True
        except LeadershipLost as exc:
            log.warning("duty %s: lease lost (%s); waiting for it again", duty.name, exc)
        if finished:
            return
        await asyncio.sleep(pause)
