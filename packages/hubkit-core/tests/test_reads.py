"""The hot-path reader (storage/reads.py) returns what the ordinary engine would, on SQLite and PostgreSQL, without
falling back on the happy path, and recovers when its PostgreSQL connections are killed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hubkit.storage import migrate
from hubkit.storage.access import Storage
from hubkit.storage.orm import Server, ServerStatus, User, table_of
from hubkit.storage.reads import Query
from sqlalchemy import bindparam, select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

S, U = table_of(Server), table_of(User)
ROW = Query(
    select(U.c.name, U.c.admin, U.c.created, S.c.status, S.c.state, S.c.started)
    .select_from(U.join(S, S.c.user_id == U.c.id))
    .where(U.c.name == bindparam("name"))
)


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: Any, tmp_path: Path) -> Any:
    url = "sqlite:///r.sqlite" if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
    st = Storage.open(url, str(tmp_path))
    await migrate.ensure_schema(st.engine, None, auto=True)
    async with st.session() as s:
        user = User(name="ann", admin=True, cookie_id="c")
        s.add(user)
        await s.flush()
        s.add(Server(user_id=user.id, name="", status=ServerStatus.RUNNING, state={"pid": 7, "x": [1, "a"]}))
        await s.commit()
    yield st
    await st.dispose()


async def test_rows_match_the_ordinary_engine(storage: Storage) -> None:
    fast = await storage.reads.all(ROW, name="ann")
    async with storage.engine.connect() as conn:
        plain = [tuple(r) for r in (await conn.execute(ROW.statement, {"name": "ann"})).all()]
    assert fast == plain and storage.reads.fallbacks == 0
    name, admin, created, status, state, started = fast[0]
    assert (name, admin, status, state, started) == ("ann", True, ServerStatus.RUNNING, {"pid": 7, "x": [1, "a"]}, None)
    assert isinstance(created, datetime) and created.tzinfo == UTC
    assert await storage.reads.one(ROW, name="nobody") is None


async def test_statements_built_per_request_read_the_same(storage: Storage) -> None:
    stmt = select(U.c.name, S.c.state).select_from(U.join(S, S.c.user_id == U.c.id)).where(U.c.name.in_(["ann", "x"]))
    assert await storage.reads.execute(stmt) == [("ann", {"pid": 7, "x": [1, "a"]})]


async def test_postgres_reads_survive_killed_connections(postgres_url: str, tmp_path: Path) -> None:
    st = Storage.open(postgres_url, str(tmp_path))
    await migrate.ensure_schema(st.engine, None, auto=True)
    try:
        assert await st.reads.one(ROW, name="ann") is None
        async with st.engine.connect() as conn:  # the server ends every other connection (a restart would too)
            from sqlalchemy import text

            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
            )
        for _ in range(3):  # the first read may fall back to the engine; none fails
            assert await st.reads.one(ROW, name="ann") is None
        assert st.reads.fallbacks <= 1
    finally:
        await st.dispose()
