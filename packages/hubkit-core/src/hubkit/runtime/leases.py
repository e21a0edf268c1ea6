"""Leases on PostgreSQL for hub replicas: session-level advisory locks on one dedicated connection per process.

Why advisory locks and not a lease table with expiry: a lock lives exactly as long as the database session of its
holder. A holder killed with ``kill -9`` closes its socket and PostgreSQL drops its locks at once, so another
replica, retrying every ``retry`` seconds, takes a duty over in about that time; a lease table would have to wait
for an expiry chosen longer than the worst pause of a live holder. No row is written while nothing changes.

Each process holds:

- one lock per singleton duty it runs (``DUTY_LOCKS``, key = a hash of the duty's name), and
- one lock naming the process itself (``INSTANCE_LOCKS``, a random key): the *instance* recorded as the owner of the
  spawns and stops it drives (``servers.lease_owner``). Another replica can tell a dead owner from a live one by
  trying that lock (:meth:`PgLeadership.owner_alive`).

A holder checks its connection every ``check`` seconds. When it is lost (the database restarted, the network cut,
the session terminated) PostgreSQL has dropped, or will drop, its locks: the holder cancels every duty it runs at
once, abandons the spawns and stops it drives (their rows are another replica's to finish now, as if this process
had died), takes a new instance identity on a new connection, and competes for the duties again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..spawn.owners import instance_name
from ..storage.locks import DUTY_LOCKS, INSTANCE_LOCKS
from .duties import LeadershipLost

log = logging.getLogger("hubkit.leases")

_INT4 = 2**31 - 1


def duty_key(duty: str) -> int:
    return zlib.crc32(duty.encode()) & _INT4


def instance_key(name: str) -> int | None:
    head = name.split("@", 1)[0]
    return int(head) if head.isdigit() else None


class PgLeadership:
    """A :class:`~.duties.Leadership` and the spawns' :class:`~hubkit.spawn.ownership.Owners` on PostgreSQL."""

    shared = True

    def __init__(self, url: URL, *, retry: float = 1.0, check: float = 1.0) -> None:
        self.retry = retry
        self.check = check
        # over TCP the server notices a vanished holder by keepalives: a few seconds, not the default two hours
        keepalive = {"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "2"}
        self._engine: AsyncEngine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": "hubkit-leases", **keepalive}},
        )
        self._conn: AsyncConnection | None = None
        self._io = asyncio.Lock()  # one statement at a time on the dedicated connection
        self._holders: dict[str, asyncio.Task[object]] = {}  # duty -> the task running it
        self._lost: set[str] = set()  # duties cancelled because the connection was lost
        self._watch: asyncio.Task[None] | None = None
        self._key = 0
        self.instance = ""  # set on connect; a new one after a lost connection
        # called when the connection (and with it this instance's lease) is lost: the spawns and stops this process
        # drives now belong to nobody, and another replica finishes them (spawn/adopt.py take_over_forever)
        self.on_lost: list[Callable[[], None]] = []
        self._closed = False

    # ------------------------------------------------------------------------------------------- connection

    async def _connection(self) -> AsyncConnection:
        """The dedicated connection with this process's instance lock, (re)connecting when needed. Caller holds
        ``_io``."""
        if self._conn is not None:
            return self._conn
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            while True:
                key = random.randint(1, _INT4)
                got = await conn.scalar(
                    text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": INSTANCE_LOCKS, "b": key}
                )
                if got:
                    break
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            name = instance_name(key)
            await conn.execute(
                text("SELECT set_config('application_name', :n, false)"), {"n": f"hubkit {name}"[:63]}
            )
        except BaseException:
            await conn.close()
            raise
        self._conn, self._key, self.instance = conn, key, name
        log.info("replica instance %s (database session pid %s)", name, pid)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_connection(), name="hubkit-lease-watch")
        return conn

    async def ready(self) -> str:
        """This process's instance name, connecting first when the lease connection is down (then the name is a
        new one: the old lease ended with the old connection)."""
        if self._conn is not None:
            return self.instance
        async with self._io:
            await self._connection()
        return self.instance

    async def _scalar(self, sql: str, **params: int) -> object:
        async with self._io:
            conn = await self._connection()
            try:
                async with asyncio.timeout(max(self.check * 5, 5)):
                    return await conn.scalar(text(sql), params)
            except (Exception, TimeoutError) as exc:
                await self._drop(conn, exc)
                raise LeadershipLost(repr(exc)) from exc

    async def _drop(self, conn: AsyncConnection, exc: BaseException) -> None:
        """The connection failed: forget it (and with it every lock) and cancel every duty held on it."""
        if self._conn is not conn:
            return
        self._conn = None
        self.instance = ""  # owns nothing until the next connection gives it a new name
        log.warning(
            "lost the coordination connection to the database (%r): stopping duties %s",
            exc,
            sorted(self._holders) or "(none)",
        )
        for duty, task in self._holders.items():
            self._lost.add(duty)
            task.cancel(f"lease of {duty} lost")
        for callback in self.on_lost:
            try:
                callback()
            except Exception:
                log.exception("after losing the lease")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await conn.invalidate()

    async def _watch_connection(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.check)
            if self._conn is None:
                continue
            with contextlib.suppress(LeadershipLost):
                await self._scalar("SELECT 1")

    # ------------------------------------------------------------------------------------------- duties

    async def _try(self, duty: str) -> bool:
        try:
            return bool(
                await self._scalar("SELECT pg_try_advisory_lock(:a, :b)", a=DUTY_LOCKS, b=duty_key(duty))
            )
        except LeadershipLost:
            return False
        except OSError as exc:  # the database is unreachable: keep trying
            log.warning("waiting for the database to lease %s: %r", duty, exc)
            return False

    @asynccontextmanager
    async def hold(self, duty: str) -> AsyncIterator[None]:
        """Wait until this process holds ``duty``'s lock; the body is cancelled (and this context left without an
        error) when the lock is lost with the connection."""
        while not await self._try(duty):  # noqa: ASYNC110 (polled: PostgreSQL has no "lock free" event)
            await asyncio.sleep(self.retry)
        task = asyncio.current_task()
        assert task is not None
        self._holders[duty] = task
        log.info("duty %s: held by this replica (%s)", duty, self.instance)
        try:
            yield
        except asyncio.CancelledError:
            if duty in self._lost and task.uncancel() == 0:
                log.warning("duty %s: stopped, its lease was lost", duty)
                return
            raise
        finally:
            self._holders.pop(duty, None)
            lost = duty in self._lost
            self._lost.discard(duty)
            if not lost and not self._closed:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(duty))

    async def _release(self, duty: str) -> None:
        with contextlib.suppress(LeadershipLost):
            await self._scalar("SELECT pg_advisory_unlock(:a, :b)", a=DUTY_LOCKS, b=duty_key(duty))

    # ------------------------------------------------------------------------------------------- owners

    async def owner_alive(self, owner: str | None) -> bool:
        """Does the process recorded as ``owner`` still hold its instance lock? A malformed or missing owner is
        dead (nobody can hold it). Raises :class:`LeadershipLost` when this process cannot tell."""
        if owner == self.instance and self._conn is not None:
            return True
        key = instance_key(owner or "")
        if key is None:
            return False
        if await self._scalar("SELECT pg_try_advisory_lock(:a, :b)", a=INSTANCE_LOCKS, b=key):
            await self._scalar("SELECT pg_advisory_unlock(:a, :b)", a=INSTANCE_LOCKS, b=key)
            return False
        return True

    async def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        async with self._io:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
        await self._engine.dispose()
