"""The spawn engine's public face: request a start, wait, stop, read progress.

Every transition is written to the database before anything external happens (``queued`` → ``starting``
before the backend's ``start``, ``stopping`` before its ``stop``), so a hub killed at any point can be
restarted and finish or undo what was in flight (:mod:`.adopt`). Spawns run as tasks of this engine; the
web layer only ever sees spawn ids and progress events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import noload

from ..config.models import SpawnerConfig
from ..errors import Conflict, LimitReached, NotFound
from ..interfaces import Phase, ProgressEvent, SpawnerBackend
from ..plugins.hooks import Hooks
from ..routing.reconcile import RouteReconciler
from ..storage.orm import Server, ServerStatus, Spawn, User
from . import lifecycle
from .env import HubUrls
from .progress import Item, ProgressStore
from .queue import AdmissionQueue

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("hubkit.spawn")

ACTIVE = (ServerStatus.QUEUED, ServerStatus.STARTING, ServerStatus.RUNNING)
FAILURE_GUARD_COOLDOWN = 60.0


class SpawnEngine:
    def __init__(
        self,
        *,
        config: SpawnerConfig,
        db: async_sessionmaker[AsyncSession],
        backend: SpawnerBackend,
        backend_name: str,
        hooks: Hooks,
        routes: RouteReconciler,
        urls: HubUrls,
        hub_id: str,
        allow_named_servers: bool = True,
        named_server_limit: int = 0,
        stop_wait: float = 5.0,
        serialize_writes: bool = False,
        authenticator: object | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.backend = backend
        self.backend_name = backend_name
        self.hooks = hooks
        self.routes = routes
        self.urls = urls
        self.hub_id = hub_id
        self.allow_named_servers = allow_named_servers
        self.named_server_limit = named_server_limit
        self.stop_wait = stop_wait
        self.authenticator = authenticator  # asked to refresh credentials before each spawn
        self.queue = AdmissionQueue(config.concurrent_spawn_limit)
        self._write_lock = asyncio.Lock() if serialize_writes else None
        self.progress = ProgressStore(db, self.is_live, self.tx)
        self._http: httpx.AsyncClient | None = None
        self._spawn_tasks: dict[int, asyncio.Task[None]] = {}  # spawn id -> task
        self._server_spawn: dict[int, int] = {}  # server id -> spawn id in flight
        self._outcomes: dict[int, asyncio.Future[str]] = {}
        self._stop_tasks: dict[int, asyncio.Task[None]] = {}
        self._closing = False
        self.consecutive_failures = 0
        self._guard_until = 0.0

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncSession]:
        """A session for one write transaction. On SQLite the engine's writers take turns in-process: SQLite
        has a single writer and its busy handler sleeps in growing steps, so hundreds of spawns contending
        inside the database crawl, while an asyncio lock hands over in microseconds."""
        if self._write_lock is None:
            async with self.db() as s:
                yield s
            return
        async with self._write_lock, self.db() as s:
            yield s

    @property
    def http(self) -> httpx.AsyncClient:
        """The readiness-check client, created on first use (httpx costs ~0.25 s to import at start)."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=0)
            )
        return self._http

    # ---------------------------------------------------------------------------------------------- queries

    def is_live(self, spawn_id: int) -> bool:
        return spawn_id in self._spawn_tasks

    def busy(self, server_id: int) -> bool:
        """A spawn or stop of this server is in progress in this process (the poller leaves it alone)."""
        return server_id in self._server_spawn or server_id in self._stop_tasks

    async def latest_spawn_id(self, user: str, server_name: str = "") -> int | None:
        async with self.db() as s:
            return (
                await s.execute(
                    select(Server.current_spawn_id)
                    .join(User, User.id == Server.user_id)
                    .where(User.name == user, Server.name == server_name)
                )
            ).scalar_one_or_none()

    def events(self, spawn_id: int, *, after: int = 0) -> AsyncIterator[Item]:
        return self.progress.events(spawn_id, after=after)

    async def wait(self, spawn_id: int, timeout: float) -> str | None:  # noqa: ASYNC109 (the agreed API)
        fut = self._outcomes.get(spawn_id)
        if fut is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                return None
        async with self.db() as s:
            spawn = await s.get(Spawn, spawn_id)
            if spawn is None:
                raise NotFound(f"no spawn {spawn_id}")
            if spawn.outcome is None:
                return None
            return "ready" if spawn.outcome == "ready" else "failed"

    # ---------------------------------------------------------------------------------------------- start

    def _check_guard(self) -> None:
        limit = self.config.consecutive_failure_limit
        if limit and self.consecutive_failures >= limit:
            if time.monotonic() < self._guard_until:
                raise LimitReached(
                    f"spawning is paused after {self.consecutive_failures} failed spawns in a row; "
                    f"it resumes within {FAILURE_GUARD_COOLDOWN:.0f} s (check the spawner's logs)"
                )
            self.consecutive_failures = 0

    def record_outcome(self, ok: bool) -> None:
        if ok:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        limit = self.config.consecutive_failure_limit
        if limit and self.consecutive_failures >= limit:
            self._guard_until = time.monotonic() + FAILURE_GUARD_COOLDOWN
            log.error("%d consecutive spawn failures: pausing spawns", self.consecutive_failures)

    async def request_start(
        self, user: str, server_name: str = "", user_options: dict[str, Any] | None = None
    ) -> int:
        """Queue a start and return its spawn id at once; see core-boundary.md for the errors raised."""
        if self._closing:
            raise Conflict("the hub is shutting down")
        self._check_guard()
        if server_name and not self.allow_named_servers:
            raise LimitReached("named servers are not enabled on this hub")
        async with self.tx() as s:
            u = (
                await s.execute(
                    select(User).where(User.name == user).options(noload(User.servers), noload(User.groups))
                )
            ).scalar_one_or_none()
            if u is None:
                raise NotFound(f"no user {user!r}")
            srv = await self._server_row(s, u.id, server_name)
            if srv is None:
                srv = await self._create_server(s, u.id, user, server_name)
            elif srv.status != ServerStatus.STOPPED:
                raise Conflict(f"server {user}/{server_name} is {srv.status.value}")
            if self.config.active_server_limit:
                n = (await s.execute(select(func.count()).where(Server.status.in_(ACTIVE)))).scalar_one()
                if n >= self.config.active_server_limit:
                    raise LimitReached(
                        f"the hub runs its maximum of {self.config.active_server_limit} servers; try later"
                    )
            spawn = Spawn(server_id=srv.id)
            s.add(spawn)
            await s.flush()
            res = await s.execute(
                update(Server)
                .where(Server.id == srv.id, Server.status == ServerStatus.STOPPED)
                .values(
                    status=ServerStatus.QUEUED,
                    current_spawn_id=spawn.id,
                    user_options=dict(user_options or {}),
                    backend=self.backend_name,
                )
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(f"server {user}/{server_name} is already starting")
            event = ProgressEvent(Phase.REQUESTED, "Spawn requested", progress=0)
            row = self.progress.add(s, spawn.id, event)
            await s.commit()
            spawn_id, server_id = spawn.id, srv.id
        self.progress.publish(spawn_id, row.id, event)
        self._outcomes[spawn_id] = asyncio.get_running_loop().create_future()
        self._server_spawn[server_id] = spawn_id
        task = asyncio.create_task(
            lifecycle.run_spawn(self, spawn_id, server_id), name=f"spawn-{user}/{server_name}"
        )
        self._spawn_tasks[spawn_id] = task
        task.add_done_callback(lambda _t: self._spawn_done(spawn_id, server_id))
        return spawn_id

    def _spawn_done(self, spawn_id: int, server_id: int) -> None:
        self._spawn_tasks.pop(spawn_id, None)
        if self._server_spawn.get(server_id) == spawn_id:
            del self._server_spawn[server_id]
        fut = self._outcomes.pop(spawn_id, None)
        if fut is not None and not fut.done():
            fut.set_result("failed")

    def finish(self, spawn_id: int, outcome: str) -> None:
        fut = self._outcomes.get(spawn_id)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    async def _server_row(self, s: AsyncSession, user_id: int, name: str) -> Server | None:
        return (
            await s.execute(
                select(Server)
                .where(Server.user_id == user_id, Server.name == name)
                .options(noload(Server.user))
            )
        ).scalar_one_or_none()

    async def _create_server(self, s: AsyncSession, user_id: int, user: str, name: str) -> Server:
        if name and self.named_server_limit:
            n = (
                await s.execute(select(func.count()).where(Server.user_id == user_id, Server.name != ""))
            ).scalar_one()
            if n >= self.named_server_limit:
                raise LimitReached(f"{user} already has {n} named servers (limit {self.named_server_limit})")
        srv = Server(user_id=user_id, name=name, status=ServerStatus.STOPPED, state={})
        s.add(srv)
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict(f"server {user}/{name} is being created by another request") from None
        return srv

    # ---------------------------------------------------------------------------------------------- stop

    async def stop(self, user: str, server_name: str = "", *, remove: bool = False, reason: str = "") -> bool:
        """Stop (and with ``remove``, delete) a server. ``False`` when it is still stopping in the background."""
        async with self.db() as s:
            uid = (await s.execute(select(User.id).where(User.name == user))).scalar_one_or_none()
            if uid is None:
                raise NotFound(f"no user {user!r}")
            srv = await self._server_row(s, uid, server_name)
        if srv is None:
            if server_name:
                raise NotFound(f"no server {user}/{server_name}")
            return True
        task = self._stop_tasks.get(srv.id)
        if task is None:
            task = asyncio.create_task(
                lifecycle.stop_server(self, srv.id, remove=remove, reason=reason),
                name=f"stop-{user}/{server_name}",
            )
            self._stop_tasks[srv.id] = task
            task.add_done_callback(lambda _t: self._stop_tasks.pop(srv.id, None))
        done, _ = await asyncio.wait({task}, timeout=self.stop_wait)
        if task in done:
            task.result()
            return True
        return False

    async def cancel_spawn(self, server_id: int) -> None:
        spawn_id = self._server_spawn.get(server_id)
        task = self._spawn_tasks.get(spawn_id) if spawn_id is not None else None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    # ---------------------------------------------------------------------------------------------- shutdown

    async def close(self) -> None:
        """Stop driving spawns; user servers keep running and in-flight ones are adopted on next start."""
        self._closing = True
        tasks = list(self._spawn_tasks.values()) + list(self._stop_tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.progress.close()
        if self._http is not None:
            await self._http.aclose()
