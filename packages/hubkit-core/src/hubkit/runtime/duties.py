"""A hub's background duties (re-adoption then route reconciling, liveness polling), run as tasks.

Each duty runs while its :class:`Leadership` holds it. One hub process always does; when several hub processes
share a database, a lease (an advisory lock or a lease table on PostgreSQL) goes behind the same protocol so
each duty runs on exactly one of them and moves to another when its holder dies.
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


class Leadership(Protocol):
    def hold(self, duty: str) -> AbstractAsyncContextManager[None]:
        """Enter once this process may run ``duty``; leave (cancelling the duty) when it may no longer."""
        ...


class SoleProcess:
    """The only hub process: it holds every duty at once."""

    @asynccontextmanager
    async def hold(self, duty: str) -> AsyncIterator[None]:
        yield


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
        async with self.leadership.hold(duty.name):
            await duty.run()

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
