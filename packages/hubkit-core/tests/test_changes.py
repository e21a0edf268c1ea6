"""Change notices: what the session capture finds in writes, when it publishes them, and how the identity cache
uses them (including a lookup racing a change)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubkit.auth.cache import Entry, IdentityCache
from hubkit.auth.identity import Identity
from hubkit.storage import migrate
from hubkit.storage.access import Storage
from hubkit.storage.capture import statement_changes
from hubkit.storage.changes import Change, LocalChanges
from hubkit.storage.orm import APIToken, Group, Server, User, user_group
from sqlalchemy import delete, insert, select, update

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def dml(stmt: object) -> set[Change]:
    return statement_changes(
        stmt, is_insert=stmt.is_insert, is_update=stmt.is_update  # type: ignore[attr-defined]
    )


def test_statement_keys_come_from_the_where_clause() -> None:
    assert dml(delete(APIToken).where(APIToken.id == 7)) == {Change("token", 7)}
    assert dml(delete(APIToken).where(APIToken.user_id.in_([1, 2]), APIToken.kind != "server")) == {
        Change("user", 1),
        Change("user", 2),
    }
    assert dml(delete(APIToken).where(APIToken.server_id == 3, APIToken.kind == "server")) == {Change("server", 3)}
    # nothing pins a key column: every token
    assert dml(delete(APIToken).where(APIToken.oauth_client.in_(["c"]))) == {Change("client", "c")}
    assert dml(delete(APIToken).where(APIToken.session_id == "s")) == {Change("token")}
    assert dml(delete(APIToken).where((APIToken.id == 1) | (APIToken.id == 2))) == {Change("token")}
    assert dml(update(User).where(User.name == "ann").values(admin=True)) == {Change("user", "ann")}
    assert dml(delete(Server).where(Server.id == 4)) == {Change("server", 4)}
    assert dml(insert(user_group)) == {Change("group")}


def test_writes_that_change_no_identity_give_no_notice() -> None:
    assert dml(update(APIToken).where(APIToken.id == 1).values(last_activity=None)) == set()
    assert dml(update(User).where(User.id == 1).values(spawn_failures=User.spawn_failures + 1)) == set()
    assert dml(update(Server).where(Server.id == 1).values(status="running", url="http://x")) == set()
    assert dml(insert(APIToken)) == set()  # a new token is not in any cache
    # SET name = name: a row lock, no change (storage/races.py claim_user)
    assert dml(update(User).where(User.name == "ann").values(name=User.name)) == set()
    assert dml(update(APIToken).where(APIToken.id == 1).values(scopes=[])) == {Change("token", 1)}


@pytest.fixture
async def storage(tmp_path: Path) -> Storage:
    st = Storage.open("sqlite:///t.sqlite", str(tmp_path))
    await migrate.ensure_schema(st.engine, None, auto=True)
    yield st  # type: ignore[misc]
    await st.dispose()


async def test_published_after_commit_and_dropped_on_rollback(storage: Storage) -> None:
    seen: list[frozenset[Change]] = []
    storage.changes.subscribe(seen.append)
    async with storage.session() as s:
        user = User(name="ann", cookie_id="c")
        s.add(user)
        await s.commit()
        uid = user.id
    assert seen == []  # creating is no change to anything cached
    async with storage.session() as s:
        row = (await s.execute(select(User).where(User.id == uid))).scalar_one()
        row.admin = True
        await s.flush()
        assert seen == []  # flushed, not committed
        await s.rollback()
    assert seen == []
    async with storage.session() as s:
        row = (await s.execute(select(User).where(User.id == uid))).scalar_one()
        row.admin = True
        await s.commit()
    assert seen == [frozenset({Change("user", uid)})]
    async with storage.session() as s:
        group = Group(name="staff", properties={}, users=[])
        s.add(group)
        await s.commit()
        row = (await s.execute(select(User).where(User.id == uid))).scalar_one()
        row.groups = [group]
        await s.commit()
        gid = group.id
    assert Change("user", uid) in seen[-1]  # (and the group, through the back reference)
    async with storage.session() as s:
        await s.execute(delete(Group).where(Group.id == gid))
        await s.commit()
    assert seen[-1] == frozenset({Change("group", gid)})


def ident(name: str) -> Identity:
    return Identity(kind="user", name=name, id=1, admin=False, scopes={})


def test_cache_drops_by_tag_and_refuses_a_lookup_that_raced_a_change() -> None:
    feed = LocalChanges(max_age=60)
    cache = IdentityCache(feed)
    cache.put("a", Entry(ident("ann"), frozenset({("token", 1), ("user", 1), ("user", "ann")})), cache.epoch)
    cache.put("b", Entry(ident("bob"), frozenset({("token", 2), ("user", 2), ("user", "bob")})), cache.epoch)
    feed.publish({Change("user", "ann")})
    assert cache.get("a") is None and cache.get("b") is not None
    # a lookup began (epoch read), then a change was published before it stored its result
    epoch = cache.epoch
    feed.publish({Change("token", 99)})
    cache.put("c", Entry(ident("cy"), frozenset({("token", 3)})), epoch)
    assert cache.get("c") is None
    feed.publish({Change("group", 5)})  # groups: everything goes
    assert len(cache) == 0


def test_progress_notices_leave_the_cache_alone() -> None:
    """A spawn's new progress events (kind ``spawn``) change nothing a caller is built from: no entry goes, and a
    lookup under way may still store its result (hundreds of queued spawns report positions all the time)."""
    feed = LocalChanges(max_age=60)
    cache = IdentityCache(feed)
    cache.put("a", Entry(ident("ann"), frozenset({("token", 1), ("user", 1)})), cache.epoch)
    epoch = cache.epoch
    feed.publish({Change("spawn", 1), Change("spawn", 2)})
    cache.put("b", Entry(ident("bob"), frozenset({("token", 2)})), epoch)
    assert cache.get("a") is not None and cache.get("b") is not None
    feed.publish({Change("spawn"), Change("token")})  # with anything else (e.g. "everything"): as ever
    assert len(cache) == 0


def test_cache_entries_expire_after_max_age_and_stay_bounded() -> None:
    feed = LocalChanges(max_age=0.0)
    cache = IdentityCache(feed, size=2)
    cache.put("a", Entry(ident("ann"), frozenset()), cache.epoch)
    assert cache.get("a") is None
    cache = IdentityCache(LocalChanges(max_age=60), size=2)
    for key in "abc":
        cache.put(key, Entry(ident(key), frozenset({("user", key)})), cache.epoch)
    assert len(cache) == 2 and cache.get("a") is None


def test_keys_given_at_execution_are_read_from_the_parameters() -> None:
    from hubkit.spawn import statements as sql

    stmt = sql.DELETE_SERVER_TOKEN
    assert statement_changes(stmt, is_insert=False, is_update=False, params={"server_id": 8}) == {
        Change("server", 8)
    }
    # not given (or many parameter sets): every token
    assert statement_changes(stmt, is_insert=False, is_update=False) == {Change("token")}
    assert statement_changes(stmt, is_insert=False, is_update=False, params=[{"server_id": 8}]) == {
        Change("token")
    }
