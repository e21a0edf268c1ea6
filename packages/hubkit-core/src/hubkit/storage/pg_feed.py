"""The change feed of hub replicas on one PostgreSQL database: ``LISTEN``/``NOTIFY`` behind :class:`.ChangeFeed`.

* :meth:`PgChanges.stage` runs inside the writing transaction and adds ``pg_notify('hubkit_changes', payload)``
  to it; PostgreSQL delivers the notice to every listening connection when the transaction commits, in commit
  order, and drops it on rollback. So a replica hears of a change only once it can read it.
* One task per process holds one connection with ``LISTEN hubkit_changes`` (:meth:`PgChanges.start`) and hands
  what arrives from *other* processes to the listeners (this process's own writes reach them after the commit,
  as with :class:`.LocalChanges`; the payload names its origin so they are not told twice).
* The payload is JSON, ``{"o": origin, "c": [[kind, key], ...]}``, under PostgreSQL's 8000-byte limit: a
  longer one says "every row" of each kind it named instead (broader, never narrower).
* A lost connection may have lost notices: every listener is told "every row of every kind" at once, copies are
  trusted for :data:`DEAF_MAX_AGE` only until the listening connection is back, and told again once it is
  (notices committed in between went nowhere). While listening, :data:`LISTENING_MAX_AGE` bounds only a notice
  that never arrived (a writer bypassing the hub's sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Collection
from typing import Any

from sqlalchemy import text

from .changes import KINDS, Change, Fanout

log = logging.getLogger("hubkit.storage")

CHANNEL = "hubkit_changes"
APPLICATION_NAME = "hubkit-changes"  # the listening connection in pg_stat_activity: hubkit-changes:<os pid>
PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses payloads of 8000 and more
LISTENING_MAX_AGE = 30.0  # seconds a copy is trusted while notices arrive
DEAF_MAX_AGE = 1.0  # ... and while the listening connection is down (as with LocalChanges)
PING_EVERY = 5.0  # the listening connection is checked this often (a peer gone without a FIN)
RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)

_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :payload)")
EVERYTHING = frozenset(Change(kind) for kind in KINDS)


def encode(origin: str, changes: Collection[Change]) -> str:
    """The notice's payload; "every row" of each kind named when the keys would not fit."""
    items = sorted(((c.kind, c.key) for c in changes), key=repr)
    payload = json.dumps({"o": origin, "c": items}, separators=(",", ":"))
    if len(payload.encode()) <= PAYLOAD_LIMIT:
        return payload
    kinds = sorted({c.kind for c in changes})
    return json.dumps({"o": origin, "c": [[k, None] for k in kinds]}, separators=(",", ":"))


def decode(payload: str) -> tuple[str, frozenset[Change]]:
    """(origin, changes); a payload this process cannot read means "everything" (a newer replica's format)."""
    try:
        data = json.loads(payload)
        origin = str(data["o"])
        found = set()
        for kind, key in data["c"]:
            if kind not in KINDS or not (key is None or isinstance(key, int | str)):
                raise ValueError(kind)
            found.add(Change(kind, key))
        return origin, frozenset(found)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("unreadable change notice (%r): treating it as a change of everything", exc)
        return "", EVERYTHING


class PgChanges(Fanout):
    """The feed of a hub process on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        connect_args: dict[str, Any],
        *,
        listening_max_age: float = LISTENING_MAX_AGE,
        deaf_max_age: float = DEAF_MAX_AGE,
    ) -> None:
        super().__init__()
        self._args = connect_args
        self.listening_max_age = listening_max_age
        self.deaf_max_age = deaf_max_age
        self.origin = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._lost: asyncio.Event | None = None
        self._listening = asyncio.Event()
        self.received = 0  # notices from other processes
        self.reconnects = 0  # times the listening connection was lost and opened again

    @property
    def max_age(self) -> float:
        return self.listening_max_age if self.listening else self.deaf_max_age

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    # ---- ChangeFeed --------------------------------------------------------------------------------------

    def stage(self, session: Any, changes: Collection[Change]) -> None:
        if changes:
            # the session's own connection: the notice is part of the writing transaction
            session.connection().execute(_NOTIFY, {"payload": encode(self.origin, changes)})

    # ---- listening ---------------------------------------------------------------------------------------

    async def start(self, *, wait: float = 10.0) -> None:
        """Start listening; returns once ``LISTEN`` is in place (or after ``wait`` seconds, still trying)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="hubkit-change-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)
        if not self.listening:
            log.warning(
                "not listening for change notices yet; cached callers are trusted %.0f s", self.deaf_max_age
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listening.clear()  # deaf from now on: copies trusted 1 s (the hub clears its cache anyway)
        await self._drop_connection()

    async def _run(self) -> None:
        attempt = 0
        first = True
        while True:
            try:
                await self._connect()
            except Exception as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                log.warning("change notices: cannot listen (%r); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if not first:
                self.reconnects += 1
                log.info("change notices: listening again")
                self._tell(EVERYTHING)  # what was committed while deaf was never heard
            first = False
            self._listening.set()
            await self._watch()
            self._listening.clear()
            await self._drop_connection()
            log.warning("change notices: listening connection lost; dropping every cached copy")
            self._tell(EVERYTHING)

    async def _connect(self) -> None:
        import asyncpg

        lost = asyncio.Event()
        settings = {
            **self._args.get("server_settings", {}),
            "application_name": f"{APPLICATION_NAME}:{os.getpid()}",
        }
        conn = await asyncpg.connect(**{"timeout": 10, **self._args, "server_settings": settings})
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, self._on_notice)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._lost = conn, lost

    async def _watch(self) -> None:
        """Until the connection is lost: wait, checking it every :data:`PING_EVERY` seconds (a server or network
        gone without closing the socket tells nothing otherwise)."""
        conn, lost = self._conn, self._lost
        assert conn is not None and lost is not None
        while not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_EVERY)
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_EVERY)
            except Exception as exc:
                log.info("change notices: listening connection failed its check: %r", exc)
                return

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._lost = None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _on_notice(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, changes = decode(payload)
        if origin == self.origin:
            return  # this process's own write: its listeners were told after the commit
        self.received += 1
        self._tell(changes)

    def _tell(self, changes: frozenset[Change]) -> None:
        try:
            self.publish(changes)
        except Exception:  # a listener's bug must not end the listening task or vanish in asyncpg's callbacks
            log.exception("a change listener failed")
