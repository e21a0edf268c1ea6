"""The PostgreSQL change feed itself, two feeds standing for two hub processes on one real database: a commit
on one is heard by the other (not by itself twice), a rollback by nobody, and a change naming more keys than
a NOTIFY payload holds arrives as "every row" of its kinds."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hubkit.storage import migrate
from hubkit.storage.access import Storage
from hubkit.storage.capture import stage
from hubkit.storage.changes import Change
from hubkit.storage.orm import User
from hubkit.storage.pg_feed import EVERYTHING, PAYLOAD_LIMIT, PgChanges, decode, encode
from sqlalchemy import delete

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def pair(postgres_url: str, tmp_path: Any) -> AsyncIterator[tuple[Storage, Storage]]:
    one = Storage.open(postgres_url, str(tmp_path))
    two = Storage.open(postgres_url, str(tmp_path))
    await migrate.ensure_schema(one.engine, None, auto=False)
    try:
        await one.listen()
        await two.listen()
        yield one, two
    finally:
        await one.dispose()
        await two.dispose()


def heard(storage: Storage) -> list[frozenset[Change]]:
    got: list[frozenset[Change]] = []
    storage.changes.subscribe(got.append)
    return got


async def until(check: Any, limit: float = 5.0) -> None:
    for _ in range(int(limit / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the limit")


async def test_a_commit_is_heard_by_the_other_process_once(pair: tuple[Storage, Storage]) -> None:
    one, two = pair
    assert isinstance(one.changes, PgChanges) and one.changes.listening and one.changes.max_age == 30.0
    mine, theirs = heard(one), heard(two)
    async with one.session() as s:
        s.add(User(name="ann", cookie_id=secrets.token_hex(8)))
        await s.commit()  # a new user: nothing cached can be built from it, no notice
    async with one.session() as s:
        await s.execute(delete(User).where(User.name == "ann"))
        await s.commit()
    await until(lambda: len(theirs) == 1)
    assert theirs == [frozenset({Change("user", "ann")})]
    await asyncio.sleep(0.2)  # one's own notice came back to it too: not told twice
    assert mine == [frozenset({Change("user", "ann")})]


async def test_a_rollback_is_heard_by_nobody(pair: tuple[Storage, Storage]) -> None:
    one, two = pair
    theirs = heard(two)
    async with one.session() as s:
        await s.execute(delete(User).where(User.id == 7))
        await s.rollback()
    async with one.session() as s:  # a later commit arrives; the rolled-back notice never does
        await s.execute(delete(User).where(User.id == 8))
        await s.commit()
    await until(lambda: len(theirs) == 1)
    await asyncio.sleep(0.2)
    assert theirs == [frozenset({Change("user", 8)})]


async def test_too_many_keys_arrive_as_every_row_of_their_kinds(pair: tuple[Storage, Storage]) -> None:
    one, two = pair
    theirs = heard(two)
    many = {Change("token", i) for i in range(3000)} | {Change("user", f"user-{i}") for i in range(500)}
    assert len(json.dumps([[c.kind, c.key] for c in many])) > PAYLOAD_LIMIT
    async with one.session() as s:
        await s.run_sync(lambda sync: stage(sync, many))
        await s.commit()
    await until(lambda: len(theirs) == 1)
    assert theirs == [frozenset({Change("token"), Change("user")})]


def test_payloads_stay_under_the_limit_and_unreadable_ones_mean_everything() -> None:
    big = [Change("user", "x" * 500 + str(i)) for i in range(40)]
    payload = encode("me", big)
    assert len(payload.encode()) <= PAYLOAD_LIMIT
    assert decode(payload) == ("me", frozenset({Change("user")}))
    assert decode(encode("me", [Change("server", 3), Change("group")])) == (
        "me",
        frozenset({Change("server", 3), Change("group")}),
    )
    assert decode("not json")[1] == EVERYTHING
    assert decode('{"o": "x", "c": [["planet", 1]]}')[1] == EVERYTHING
