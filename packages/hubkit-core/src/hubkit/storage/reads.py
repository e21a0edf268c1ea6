"""Hot-path reads: a fixed Core ``SELECT`` compiled once per dialect, run with as little between it and the
database as each backend allows. Used for the reads every request makes (the caller's token, the user asked
for); everything else goes through ordinary sessions.

Measured on this project's 2-core machine, per indexed single-row read (CPU of the hub process): an ORM session
~1.5 ms and a Core statement on an ``AsyncConnection`` ~0.8 ms through aiosqlite (a thread hop per cursor call,
plus pool checkout and rollback); ~10 µs through :mod:`sqlite3` on the event loop's own thread. On PostgreSQL a
Core statement through SQLAlchemy's asyncpg adapter ~0.7-1.0 ms, asyncpg's own ``fetch`` ~0.3 ms. So:

* **SQLite** (a database file): one :mod:`sqlite3` connection of this process, read-only, in autocommit, used
  synchronously on the loop thread. Under WAL a reader never waits for a writer, and each statement sees the
  last commit; the busy timeout is 0, so in the rare case SQLite would make it wait (WAL recovery) the read
  goes the ordinary way instead of blocking the loop.
* **PostgreSQL** (asyncpg): a few asyncpg connections of its own (:class:`PgConnections`), with the JSON codecs
  SQLAlchemy's dialect sets.
* Anything else, or any failure of the paths above: the statement through the engine, as usual.

Results are plain tuples, converted by the same SQLAlchemy type processors as an ordinary execution would use
(so ``UTCDateTime``, ``JSON`` and enums come back as they always do).

Statements built per request (a filtered, sorted page of users) use :meth:`Reader.execute`: on SQLite a
synchronous SQLAlchemy engine on the same read-only connection (SQLAlchemy's compiled-statement cache, no
thread hops, ~0.1 ms per statement), elsewhere the async engine in autocommit (no ``BEGIN``/``ROLLBACK``
round trips for a single read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, String, create_engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

log = logging.getLogger("hubkit.storage")

Processor = Callable[[Any], Any] | None


#: what :class:`joined` puts between values: a control character, which names never contain (services/names.py)
SEP = "\x1f"


class joined(GenericFunction[str]):
    """``joined(column)``: the column's values in one string, separated by :data:`SEP` (an aggregate).

    SQLAlchemy's own ``aggregate_strings`` passes its separator as a parameter rendered at execution time, which
    a statement compiled once cannot hold; this spells the separator in SQL."""

    type = String()
    name = identifier = "hubkit_joined"
    inherit_cache = True


@compiles(joined)
def _joined_other(element: joined, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(
        f"joined() has no SQL for {compiler.dialect.name}; hubkit runs on SQLite and PostgreSQL"
    )


@compiles(joined, "sqlite")
def _joined_sqlite(element: joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, char(31))"


@compiles(joined, "postgresql")
def _joined_postgresql(element: joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, chr(31))"


def split_joined(value: str | None) -> tuple[str, ...]:
    """The values of a :class:`joined` column, sorted (an aggregate's order is not defined)."""
    return tuple(sorted(value.split(SEP))) if value else ()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind parameter names, in the order the SQL wants them
    binders: tuple[Processor, ...]
    processors: tuple[Processor, ...]


class Query:
    """A fixed ``SELECT`` with named bind parameters (no ``IN`` lists: their SQL changes with their length)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # compiled SQL per dialect: a pure function of the statement, the same for every hub in the process
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        done = self._compiled.get(dialect.name + dialect.driver)
        if done is not None:
            return done
        c = self.statement.compile(dialect=dialect)
        if "POSTCOMPILE" in c.string:
            raise ValueError("a Query cannot hold an expanding IN parameter")
        names = tuple(c.positiontup or ())
        binders = tuple(c.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
        processors = tuple(
            col.type.dialect_impl(dialect).result_processor(dialect, None)
            for col in self.statement.selected_columns
        )
        done = _Compiled(c.string, names, binders, processors)
        self._compiled[dialect.name + dialect.driver] = done
        return done


def _convert(rows: Sequence[Sequence[Any]], processors: tuple[Processor, ...]) -> list[tuple[Any, ...]]:
    if not any(processors):
        return [tuple(r) for r in rows]
    return [
        tuple(v if p is None or v is None else p(v) for p, v in zip(processors, r, strict=True)) for r in rows
    ]


class Reader:
    """Runs :class:`Query` objects for one engine (see the module docstring for how)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        url = engine.url
        self._sqlite_path: str | None = None
        db = url.database
        if url.drivername.startswith("sqlite") and db and db != ":memory:" and not db.startswith("file:"):
            self._sqlite_path = db
        self._is_asyncpg = url.drivername == "postgresql+asyncpg"
        self._sqlite: sqlite3.Connection | None = None
        self._sync: Engine | None = None  # SQLAlchemy on self._sqlite, for statements built per request
        self._pg: PgConnections | None = None
        self.statements = 0  # statements run (tests, metrics)
        self.fallbacks = 0  # of them, those that went the ordinary way

    async def all(self, query: Query, **params: Any) -> list[tuple[Any, ...]]:
        self.statements += 1
        compiled = query.compiled(self.dialect)
        args = [
            b(params[n]) if b is not None and params[n] is not None else params[n]
            for n, b in zip(compiled.names, compiled.binders, strict=True)
        ]
        if self._sqlite_path is not None:
            rows = self._sqlite_rows(compiled.sql, args)
            if rows is not None:
                return _convert(rows, compiled.processors)
        elif self._is_asyncpg:
            pg_rows = await self._pg_rows(compiled.sql, args)
            if pg_rows is not None:
                return _convert(pg_rows, compiled.processors)
        self.fallbacks += 1
        async with self.engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(query.statement, params)).all()]

    async def one(self, query: Query, **params: Any) -> tuple[Any, ...] | None:
        rows = await self.all(query, **params)
        return rows[0] if rows else None

    async def execute(self, statement: Select[Any]) -> list[tuple[Any, ...]]:
        """A ``SELECT`` built per request (any shape, ``IN`` lists included), as tuples."""
        self.statements += 1
        if self._sqlite_path is not None:
            sync = self._sync_engine()
            if sync is not None:
                try:
                    with sync.connect() as conn:
                        return [tuple(r) for r in conn.execute(statement).all()]
                except OperationalError as exc:
                    log.debug("fast read fell back: %s", exc)
        self.fallbacks += 1
        async with self.engine.connect() as conn:
            if not self._sqlite_path:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return [tuple(r) for r in (await conn.execute(statement)).all()]

    def _sync_engine(self) -> Engine | None:
        if self._sync is None:
            if self._connect_sqlite() is None:
                return None
            self._sync = create_engine("sqlite://", creator=lambda: self._sqlite, poolclass=StaticPool)
        return self._sync

    # ---- SQLite --------------------------------------------------------------------------------------------

    def _connect_sqlite(self) -> sqlite3.Connection | None:
        if self._sqlite is None:
            assert self._sqlite_path is not None
            if not Path(self._sqlite_path).exists():
                return None
            # mode=rw: never create the file; query_only: this connection cannot write
            conn = sqlite3.connect(
                f"file:{self._sqlite_path}?mode=rw",
                uri=True,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only=ON")
            self._sqlite = conn
        return self._sqlite

    def _sqlite_rows(self, sql: str, args: list[Any]) -> list[Any] | None:
        try:
            conn = self._connect_sqlite()
            if conn is None:
                return None
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            # busy (WAL recovery), a table not there yet: this once, the ordinary way
            log.debug("fast read fell back: %s", exc)
            return None
        except sqlite3.Error as exc:
            log.info("fast read connection reset: %s", exc)
            self._close_sqlite()
            return None

    def _close_sqlite(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
            self._sync = None
        if self._sqlite is not None:
            with contextlib.suppress(sqlite3.Error):
                self._sqlite.close()
            self._sqlite = None

    # ---- PostgreSQL ----------------------------------------------------------------------------------------

    async def _pg_rows(self, sql: str, args: list[Any]) -> list[Any] | None:
        if self._pg is None:
            self._pg = PgConnections(asyncpg_args(self.engine), PG_CONNECTIONS)
        try:
            return await self._pg.fetch(sql, args)
        except Exception as exc:
            # a lost or broken connection (dropped; the next read opens another), a restarting server: this
            # once, the ordinary way, which raises again whatever is not about this path
            log.info("fast read fell back: %r", exc)
            return None

    async def close(self) -> None:
        self._close_sqlite()
        if self._pg is not None:
            pg, self._pg = self._pg, None
            await pg.close()


PG_CONNECTIONS = 4


def asyncpg_args(engine: AsyncEngine) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for the database of an engine on ``postgresql+asyncpg``."""
    _args, opts = engine.dialect.create_connect_args(engine.url)
    for key in ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"):
        opts.pop(key, None)
    return dict(opts)


class PgConnections:
    """A few asyncpg connections for single-statement reads, handed out without ceremony: asyncpg's own pool
    arms a timer and runs a reset query per use, which cost as much as the read; these connections only ever
    run one ``SELECT`` at a time in autocommit, so there is nothing to reset. A connection that fails is
    dropped and replaced by the next use."""

    def __init__(self, connect_args: dict[str, Any], size: int) -> None:
        self._args = connect_args
        self._size = size
        self._idle: list[Any] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()

    async def _take(self) -> Any:
        if self._idle:
            return self._idle.pop()
        if self._open < self._size:
            self._open += 1
            try:
                import asyncpg

                conn = await asyncpg.connect(**self._args)
                await _pg_codecs(conn)
                return conn
            except BaseException:
                self._open -= 1
                raise
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give(waiter.result())  # handed over just as the waiter went away: not lost
            raise

    def _give(self, conn: Any) -> None:
        if conn.is_closed():
            self._open -= 1
            conn = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if conn is None:  # a slot came free: the waiter tries again (and opens a connection)
                waiter.set_exception(_Reopen())
            else:
                waiter.set_result(conn)
            return
        if conn is not None:
            self._idle.append(conn)

    async def fetch(self, sql: str, args: list[Any]) -> list[Any]:
        while True:
            try:
                conn = await self._take()
                break
            except _Reopen:
                continue
        try:
            rows = await conn.fetch(sql, *args)
        except BaseException:
            conn.terminate()
            self._give(conn)
            raise
        self._give(conn)
        return list(rows)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)


class _Reopen(Exception):
    """Tells a waiter that a connection slot is free (the one it waited for broke)."""


async def _pg_codecs(conn: Any) -> None:
    """JSON values decoded by the connection, as SQLAlchemy's asyncpg dialect sets them up (its result processors
    for JSON then do nothing)."""
    await conn.set_type_codec(
        "json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )
