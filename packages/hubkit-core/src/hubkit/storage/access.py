"""``Storage``: one hub's database handle, the only way the core reaches the database.

Reads open a session with :attr:`Storage.session` (an ``async_sessionmaker``); write transactions that may
contend use :meth:`Storage.tx`. On SQLite writers take turns in-process: SQLite has a single writer and its busy
handler sleeps in growing steps, so hundreds of spawns contending inside the database crawl, while an asyncio
lock hands over in microseconds. On PostgreSQL ``tx`` is a plain session.

The storage also carries the hub's change feed (:mod:`.changes`; every session it makes reports what it changed,
:mod:`.capture`) and its hot-path reader (:mod:`.reads`). On PostgreSQL the feed also reaches the other hub
processes on the database (:mod:`.pg_feed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .changes import ChangeFeed, LocalChanges
from .crypt import CryptKeeper
from .engine import create_engine, create_sessionmaker, is_sqlite, normalize_url
from .pg_feed import PgChanges
from .reads import Reader, asyncpg_args


class Storage:
    def __init__(
        self, engine: AsyncEngine, *, crypt: CryptKeeper | None = None, changes: ChangeFeed | None = None
    ) -> None:
        self.engine = engine
        self.crypt = crypt if crypt is not None else CryptKeeper([])
        self.changes: ChangeFeed = changes if changes is not None else LocalChanges()
        self.session: async_sessionmaker[AsyncSession] = create_sessionmaker(
            engine, crypt=self.crypt, changes=self.changes
        )
        self.reads = Reader(engine)
        self.is_sqlite = is_sqlite(engine.url)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @classmethod
    def open(cls, db_url: str, data_dir: str, *, crypt: CryptKeeper | None = None) -> Storage:
        """The storage of a hub process: on PostgreSQL its change feed also tells (and hears) the other
        processes on the database (:mod:`.pg_feed`), once :meth:`listen` has run."""
        engine = create_engine(normalize_url(db_url, data_dir))
        changes: ChangeFeed | None = None
        if engine.url.drivername == "postgresql+asyncpg":
            changes = PgChanges(asyncpg_args(engine))
        return cls(engine, crypt=crypt, changes=changes)

    async def listen(self) -> None:
        """Hear other processes' changes from now on (a hub that serves requests calls this as it starts)."""
        await self.changes.start()

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncSession]:
        """A session for one write transaction (turn-taking on SQLite, see the module docstring)."""
        if self._write_lock is None:
            async with self.session() as s:
                yield s
            return
        async with self._write_lock, self.session() as s:
            yield s

    async def dispose(self) -> None:
        await self.changes.close()
        await self.reads.close()
        await self.engine.dispose()
