"""The login limit that hub replicas share (auth/pg_ratelimit.py) on a real PostgreSQL: two storages stand for two
replicas. Same rules as the in-memory limiter; the window runs on the database's clock; parallel attempts are
counted one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hubkit.auth.pg_ratelimit import SharedLoginRateLimiter
from hubkit.storage import migrate
from hubkit.storage.access import Storage
from sqlalchemy import text

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def storages(postgres_url: str, tmp_path: Any) -> AsyncIterator[tuple[Storage, Storage]]:
    a, b = Storage.open(postgres_url, str(tmp_path)), Storage.open(postgres_url, str(tmp_path))
    await migrate.upgrade(a.engine)
    async with a.tx() as s:
        await s.execute(text("DELETE FROM login_failures"))
        await s.commit()
    yield a, b
    for st in (a, b):
        await st.dispose()


async def test_two_replicas_share_the_counts_and_the_window(storages: tuple[Storage, Storage]) -> None:
    a = SharedLoginRateLimiter(storages[0], limit=3, window=1.5, per_address=4)
    b = SharedLoginRateLimiter(storages[1], limit=3, window=1.5, per_address=4)
    assert [await (a, b)[i % 2].attempt("alice", "10.0.0.1") for i in range(3)] == [0.0, 0.0, 0.0]
    wait = await b.attempt("alice", "10.0.0.1")
    assert 0 < wait <= 1.5
    assert await a.attempt("alice", "10.0.0.2") == 0  # another address: its own count
    assert await a.attempt("bob", "10.0.0.1") == 0  # another name: the 4th of the address (a refusal counts nothing)
    assert await b.attempt("carol", "10.0.0.1") > 0  # the address's 4 are spent, whatever the name
    await a.passed("bob", "10.0.0.1")  # bob logged in: the address gets that attempt back
    assert await b.attempt("carol", "10.0.0.1") == 0
    await asyncio.sleep(wait + 0.1)  # the window moved on: alice's oldest attempts left it
    assert await a.attempt("alice", "10.0.0.1") == 0


async def test_parallel_guesses_are_counted_one_by_one(storages: tuple[Storage, Storage]) -> None:
    a = SharedLoginRateLimiter(storages[0], limit=5, window=60)
    b = SharedLoginRateLimiter(storages[1], limit=5, window=60)
    waits = await asyncio.gather(*((a, b)[i % 2].attempt("mallory", "10.9.9.9") for i in range(20)))
    assert sum(1 for w in waits if w == 0) == 5, waits
