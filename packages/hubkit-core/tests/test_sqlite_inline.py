"""SQLite on the event loop's thread (storage/sqlite_inline.py): a statement that finds the write lock taken waits
without blocking the loop, proceeds once the lock is free, and gives up after the busy timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from hubkit.storage import migrate, sqlite_inline
from hubkit.storage.access import Storage
from hubkit.storage.orm import User
from sqlalchemy import func, select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def storage(tmp_path: Path) -> Storage:
    st = Storage.open("sqlite:///t.sqlite", str(tmp_path))
    await migrate.ensure_schema(st.engine, None, auto=True)
    yield st  # type: ignore[misc]
    await st.dispose()


async def test_a_writer_waits_for_another_task_without_blocking_the_loop(storage: Storage) -> None:
    async def second_writer() -> None:
        async with storage.session() as b:
            b.add(User(name="b", cookie_id="c"))
            await b.commit()

    async with storage.session() as a:
        a.add(User(name="a", cookie_id="c"))
        await a.flush()  # a holds SQLite's write lock from here to its commit
        task = asyncio.create_task(second_writer())
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the second writer waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not task.done()
        await a.commit()
    await asyncio.wait_for(task, 10)
    async with storage.session() as s:
        assert (await s.execute(select(func.count(User.id)))).scalar_one() == 2


async def test_a_lock_held_by_another_process_is_waited_for(storage: Storage, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "t.sqlite", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    released = asyncio.get_running_loop().call_later(0.3, lambda: other.execute("COMMIT"))
    t0 = time.monotonic()
    async with storage.session() as s:
        s.add(User(name="c", cookie_id="c"))
        await s.commit()
    assert time.monotonic() - t0 >= 0.25
    released.cancel()
    other.close()


async def test_the_busy_timeout_still_ends_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    conn = await sqlite_inline.creator(str(path), busy_timeout=0.2)()
    cursor = conn.cursor()
    t0 = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await cursor.execute("INSERT INTO t VALUES (1)")
    assert 0.15 < time.monotonic() - t0 < 5
    holder.execute("ROLLBACK")
    holder.close()
    await conn.close()
