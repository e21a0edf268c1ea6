"""Storage: migrations on empty SQLite and PostgreSQL, round trip, ORM/migration parity, WAL, encryption."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.fernet import Fernet
from hubkit.storage import migrate
from hubkit.storage.crypt import CryptKeeper
from hubkit.storage.engine import create_engine, create_sessionmaker, normalize_url
from hubkit.storage.orm import User
from sqlalchemy import select, text

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/t.sqlite"
    return request.getfixturevalue("postgres_url")


async def test_round_trip_and_models_match(db_url):
    engine = create_engine(normalize_url(db_url))
    try:
        assert not await migrate.has_tables(engine)
        await migrate.upgrade(engine)
        assert await migrate.current_heads(engine) == migrate.script_heads()
        assert await migrate.schema_diff(engine) == []
        await migrate.downgrade(engine)
        assert await migrate.current_heads(engine) == set()
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
        assert set(left) <= {"alembic_version"}
        await migrate.upgrade(engine)
        assert await migrate.schema_diff(engine) == []
    finally:
        await engine.dispose()


def test_db_upgrade_cli_on_empty_sqlite(tmp_path, run_cli):
    db = tmp_path / "empty.sqlite"
    r = run_cli("db", "upgrade", "--db-url", f"sqlite:///{db}", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    (head,) = migrate.script_heads()
    assert f"empty -> {head}" in r.stdout
    import sqlite3

    con = sqlite3.connect(db)
    try:
        tables = {row[0] for row in con.execute("select name from sqlite_master where type='table'")}
        mode = con.execute("pragma journal_mode").fetchone()[0]
    finally:
        con.close()
    assert {"users", "servers", "spawns", "spawn_events", "api_tokens", "oauth_clients"} <= tables
    assert mode == "wal"
    again = run_cli("db", "upgrade", "--db-url", f"sqlite:///{db}", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and f"{head} -> {head}" in again.stdout


def test_db_upgrade_cli_on_empty_postgres(postgres_cluster, tmp_path, run_cli):
    name = postgres_cluster.create_database()
    r = run_cli("db", "upgrade", "--db-url", postgres_cluster.url(name), "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    tables = postgres_cluster.psql("select tablename from pg_tables where schemaname='public'", name).split()
    assert {"users", "servers", "spawns", "spawn_events", "alembic_version"} <= set(tables)


async def test_encrypted_column_roundtrip(db_url):
    key = Fernet.generate_key().decode()
    engine = create_engine(normalize_url(db_url))
    try:
        await migrate.upgrade(engine)
        db = create_sessionmaker(engine, crypt=CryptKeeper([key]))
        async with db() as s:
            s.add(User(name="alice", cookie_id="c", auth_state={"access_token": "s3cret"}))
            await s.commit()
        async with engine.connect() as conn:
            raw = (await conn.execute(text("select auth_state from users"))).scalar_one()
        assert "s3cret" not in raw
        async with db() as s:
            u = (await s.execute(select(User))).scalar_one()
            assert u.auth_state == {"access_token": "s3cret"}
        wrong = create_sessionmaker(engine, crypt=CryptKeeper([Fernet.generate_key().decode()]))
        async with wrong() as s:  # wrong key: refuse, do not return garbage
            with pytest.raises(RuntimeError, match="cannot be decrypted"):
                (await s.execute(select(User))).scalar_one().auth_state  # noqa: B018
    finally:
        await engine.dispose()


async def test_ensure_schema_refuses_outdated_postgres(postgres_url):
    engine = create_engine(normalize_url(postgres_url))
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("update alembic_version set version_num='0000_old'"))
        from hubkit.errors import ConfigError

        with pytest.raises(ConfigError, match="hubkit db upgrade"):
            await migrate.ensure_schema(engine, None, auto=False)
    finally:
        await engine.dispose()


async def test_hub_spawns_on_postgres(postgres_url, tmp_path, hub_factory):
    """The whole engine on PostgreSQL: schema created at start, spawns, queue events, stop."""
    from hubkit.testing.plugin import make_settings

    hub = await hub_factory(
        make_settings(tmp_path / "pg", hub={"db_url": postgres_url}, spawner={"concurrent_spawn_limit": 2})
    )
    async with hub.db() as s:
        s.add_all([User(name=f"pg{i}", cookie_id="c") for i in range(5)])
        await s.commit()
    ids = [await hub.spawns.request_start(f"pg{i}") for i in range(5)]
    assert [await hub.spawns.wait(i, 30) for i in ids] == ["ready"] * 5
    assert hub.spawns.queue.max_active_seen <= 2
    events = [ev async for _s, ev in hub.spawns.events(ids[-1])]
    assert events[-1].detail["url"] == "/user/pg4/"
    assert [await hub.spawns.stop(f"pg{i}") for i in range(5)] == [True] * 5
    assert await hub.proxy.get_routes() == {}


async def test_replicas_creating_the_schema_at_once_on_postgresql(postgres_url: str) -> None:
    """Hub replicas (and a schema Job) starting together on an empty PostgreSQL database: one creates the schema,
    the others wait for it and find it current, none fails on tables another just made. (Engines in one process
    stand in for the replicas here; before the lock they failed inside Alembic as well.)"""
    engines = [create_engine(postgres_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(migrate.ensure_schema(e, None, auto=False) for e in engines[:3]),
            migrate.upgrade(engines[3]),
            return_exceptions=True,
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await migrate.current_heads(engines[0]) == migrate.script_heads(None)
    finally:
        for e in engines:
            await e.dispose()
