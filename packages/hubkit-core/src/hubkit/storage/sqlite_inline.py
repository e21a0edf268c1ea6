"""SQLite for the async engine without a thread: statements run on the event loop's own thread.

SQLAlchemy's aiosqlite dialect sends every cursor step (create, execute, fetch, close) to the connection's
worker thread and back through the event loop. On this project's shared 2-core machine that round trip, not
SQLite, was the cost: an indexed single-row read took ~0.6-1.2 ms of hub CPU through aiosqlite (one hop per
statement: ~0.6 ms) and ~10 µs through :mod:`sqlite3` directly; in a spawn wave the hops were a third of the
hub's CPU. A WAL-mode SQLite statement on a local file takes microseconds, so this driver runs it inline.

What a thread used to guarantee is kept another way:

* **Never blocking on a lock.** The connection has no busy timeout: SQLite answers ``SQLITE_BUSY`` at once
  when another connection holds the write lock, and the statement is retried after an ``asyncio.sleep`` (1 ms
  growing to 50 ms, for up to the configured busy timeout). The holder (another task of this hub, or another
  process) keeps running meanwhile. ``SQLITE_BUSY_SNAPSHOT`` (a read transaction overtaken by a writer) is
  raised as before: retrying cannot help it.
* **Durability and speed as before**: WAL, ``synchronous=NORMAL`` (no fsync per commit), foreign keys
  (:mod:`.engine` sets the pragmas). A WAL checkpoint runs inside the commit that crosses 1,000 pages, as it
  did on the worker thread; that is the one place a commit can take milliseconds.

JupyterHub runs its SQLite on its event loop too (synchronous SQLAlchemy, rollback journal, fsync per commit);
this keeps that simplicity with WAL and without ever sleeping in SQLite's busy handler.

The objects below are what SQLAlchemy's aiosqlite adapter expects of an aiosqlite connection and cursor; the
engine gets them through ``async_creator`` (:func:`creator`). In-memory databases keep the plain aiosqlite path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

_RETRY = {sqlite3.SQLITE_BUSY, getattr(sqlite3, "SQLITE_BUSY_RECOVERY", 261)}
_FIRST_WAIT, _MAX_WAIT = 0.001, 0.05


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code in _RETRY
    return "database is locked" in str(exc)


async def _patiently(call: Callable[[], Any], busy_timeout: float) -> Any:
    """``call()``, retried while SQLite says another connection holds the lock, yielding to the loop meanwhile."""
    try:
        return call()
    except sqlite3.OperationalError as exc:
        if not _busy(exc) or busy_timeout <= 0:
            raise
    deadline = time.monotonic() + busy_timeout
    wait = _FIRST_WAIT
    while True:
        await asyncio.sleep(wait)
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        wait = min(wait * 2, _MAX_WAIT)


class InlineCursor:
    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self._cursor = connection._conn.cursor()
        self.arraysize = 1

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor = self._cursor
        if parameters is None:
            await _patiently(lambda: cursor.execute(sql), self._connection.busy_timeout)
        else:
            await _patiently(lambda: cursor.execute(sql, parameters), self._connection.busy_timeout)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> InlineCursor:
        cursor = self._cursor
        await _patiently(lambda: cursor.executemany(sql, parameters), self._connection.busy_timeout)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        return None


class _Immediate:
    """Stands in for aiosqlite's queue to its thread (SQLAlchemy sets the isolation level through it)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    def __init__(self, db: sqlite3.Connection, busy_timeout: float) -> None:
        self._connection: sqlite3.Connection | None = db
        self._tx = _Immediate()
        self.busy_timeout = busy_timeout

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def commit(self) -> None:
        db = self._conn
        if db.in_transaction:
            await _patiently(db.commit, self.busy_timeout)

    async def rollback(self) -> None:
        db = self._conn
        if db.in_transaction:
            db.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)


def creator(path: str, *, busy_timeout: float) -> Callable[[], Awaitable[InlineConnection]]:
    """``async_creator`` for ``create_async_engine``: inline connections to the database file ``path``."""

    async def connect() -> InlineConnection:
        # timeout=0: SQLite's own busy handler would sleep on the loop's thread; _patiently waits instead.
        # check_same_thread=False: the pool may hand a connection to whichever thread runs the loop.
        db = sqlite3.connect(path, timeout=0, check_same_thread=False)
        return InlineConnection(db, busy_timeout)

    return connect
