"""The async database engine: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL via asyncpg.

SQLite needs a little care to be a good hub database: WAL lets readers run during a write, a busy timeout
makes concurrent writers wait instead of failing, and foreign keys are off unless asked for.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import sqlite_inline
from .capture import FEED_KEY, WatchedSession
from .changes import ChangeFeed
from .crypt import SESSION_KEY, CryptKeeper

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str, data_dir: str = ".") -> URL:
    """Pick async drivers and resolve a relative SQLite path against ``data_dir``."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    db = u.database
    if u.drivername.startswith("sqlite") and db and db != ":memory:" and not os.path.isabs(db):
        u = u.set(database=os.path.abspath(os.path.join(data_dir, db)))
    return u


def is_sqlite(url: URL | str) -> bool:
    return make_url(url).drivername.startswith("sqlite")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(url: str | URL, *, data_dir: str = ".", echo: bool = False) -> AsyncEngine:
    u = url if isinstance(url, URL) else normalize_url(url, data_dir)
    # statement parameters (token hashes, encrypted auth state) never appear in error messages or logs
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    inline = False
    if is_sqlite(u):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
        if u.database and u.database != ":memory:" and not u.database.startswith("file:") and not u.query:
            # a database file: statements run on the event loop's thread (see sqlite_inline.py)
            kwargs["async_creator"] = sqlite_inline.creator(
                u.database, busy_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
            )
            inline = True
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(u, **kwargs)
    if is_sqlite(u):
        # inline connections must never sleep in SQLite's busy handler (on the loop's thread): no busy timeout,
        # sqlite_inline waits by yielding instead
        pragmas = partial(_sqlite_pragmas, busy_timeout_ms=0) if inline else _sqlite_pragmas
        event.listen(engine.sync_engine, "connect", pragmas)
    return engine


def create_sessionmaker(
    engine: AsyncEngine, *, crypt: CryptKeeper | None = None, changes: ChangeFeed | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``crypt`` is the keeper its rows' encrypted columns use (:mod:`.crypt`), ``changes``
    the feed their commits report to (:mod:`.capture`)."""
    # expire_on_commit=False: rows read in a request stay usable after its commit (no lazy reload I/O).
    info: dict[str, object] = {}
    if crypt is not None:
        info[SESSION_KEY] = crypt
    if changes is not None:
        info[FEED_KEY] = changes
    return async_sessionmaker(engine, expire_on_commit=False, info=info, sync_session_class=WatchedSession)
