"""What this hub process is driving right now: spawn and stop tasks, and the outcome each spawn waits for.

In memory on purpose: it only says which work *this* process runs. Everything another process (or a restarted
hub) needs is in the database; with several hub replicas each keeps its own ``InFlight``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("hubkit.spawn")


class InFlight:
    def __init__(self) -> None:
        self.closing = False  # set once the hub shuts down: cancelled spawns are then adopted, not failed
        self._spawn_tasks: dict[int, asyncio.Task[None]] = {}  # spawn id -> task
        self._server_spawn: dict[int, int] = {}  # server id -> spawn id in flight
        self._outcomes: dict[int, asyncio.Future[str]] = {}
        self._stop_tasks: dict[int, asyncio.Task[None]] = {}
        self._abandoned: set[int] = set()  # spawn ids cancelled without writing anything (abandon_all)

    def is_live(self, spawn_id: int) -> bool:
        return spawn_id in self._spawn_tasks

    def driving(self) -> dict[int, int]:
        """Spawn id -> server id of every spawn this process runs now."""
        return {spawn_id: server_id for server_id, spawn_id in self._server_spawn.items()}

    def busy(self, server_id: int) -> bool:
        """A spawn or stop of this server is in progress in this process (the poller leaves it alone)."""
        return server_id in self._server_spawn or server_id in self._stop_tasks

    def run_spawn(self, spawn_id: int, server_id: int, work: Coroutine[Any, Any, None], name: str) -> None:
        self._outcomes[spawn_id] = asyncio.get_running_loop().create_future()
        self._server_spawn[server_id] = spawn_id
        task = asyncio.create_task(work, name=name)
        self._spawn_tasks[spawn_id] = task
        task.add_done_callback(lambda _t: self._spawn_done(spawn_id, server_id))

    def _spawn_done(self, spawn_id: int, server_id: int) -> None:
        self._spawn_tasks.pop(spawn_id, None)
        self._abandoned.discard(spawn_id)
        if self._server_spawn.get(server_id) == spawn_id:
            del self._server_spawn[server_id]
        fut = self._outcomes.pop(spawn_id, None)
        if fut is not None and not fut.done():
            fut.set_result("failed")

    def finish(self, spawn_id: int, outcome: str) -> None:
        fut = self._outcomes.get(spawn_id)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    async def outcome(self, spawn_id: int, timeout: float) -> str | None:  # noqa: ASYNC109
        """``ready``/``failed`` once this process's spawn ends, ``None`` on timeout; ``KeyError`` when this
        process does not drive ``spawn_id``."""
        fut = self._outcomes[spawn_id]
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return None

    async def cancel_spawn(self, server_id: int) -> None:
        spawn_id = self._server_spawn.get(server_id)
        task = self._spawn_tasks.get(spawn_id) if spawn_id is not None else None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def stop_task(self, server_id: int, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """The running stop of ``server_id``, or a new one running ``work`` (closed unused otherwise)."""
        task = self._stop_tasks.get(server_id)
        if task is not None:
            work.close()
            return task
        task = asyncio.create_task(work, name=name)
        self._stop_tasks[server_id] = task
        task.add_done_callback(lambda _t: self._stop_tasks.pop(server_id, None))
        return task

    def abandoned(self, spawn_id: int) -> bool:
        """Cancelled by :meth:`abandon_all`: the spawn must not write its failure (another process finishes it)."""
        return spawn_id in self._abandoned

    def abandon_all(self) -> None:
        """This process lost its ownership lease (replicas): cancel every spawn and stop it drives, writing nothing;
        the replica that takes the rows over cleans them up."""
        if self._spawn_tasks or self._stop_tasks:
            log.warning(
                "lease lost: abandoning %d spawn(s) and %d stop(s) to the replica that takes them over",
                len(self._spawn_tasks),
                len(self._stop_tasks),
            )
        self._abandoned.update(self._spawn_tasks)
        for t in [*self._spawn_tasks.values(), *self._stop_tasks.values()]:
            t.cancel()

    async def cancel_all(self) -> None:
        self.closing = True
        tasks = list(self._spawn_tasks.values()) + list(self._stop_tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
