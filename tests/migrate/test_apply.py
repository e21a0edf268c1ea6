"""Applying a plan to a hubkit database that already holds data, and planning again over the result."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hubkit.importers.jupyterhub.plan import Policy, plan_import
from hubkit.importers.jupyterhub.source import JHGroup, JHServer, JHUser, JupyterHubData
from hubkit.importers.jupyterhub.target import apply, load_state
from hubkit.storage.engine import create_sessionmaker
from hubkit.storage.orm import Group, Server, User, user_group
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.anyio


async def test_updates_land_and_a_second_plan_is_empty(db: AsyncEngine) -> None:
    make = create_sessionmaker(db)
    async with make() as s:  # what hubkit held before the import
        alice = User(name="alice", admin=False, cookie_id="c1", user_info={"email": "old"})
        bob = User(name="bob", admin=True, cookie_id="c2")
        group = Group(name="students", properties={"term": 1, "room": "A"})
        s.add_all([alice, bob, group])
        await s.flush()
        await s.execute(insert(user_group), [{"user_id": bob.id, "group_id": group.id}])
        s.add(Server(user_id=alice.id, name="nb1", user_options={}, state={}, activity={}))
        await s.commit()
    source = JupyterHubData(
        revision="test",
        users=(JHUser("alice", True, user_info={"email": "new"}), JHUser("bob", False), JHUser("carol", False)),
        groups=(JHGroup("students", {"term": 3}, ("alice", "bob", "carol")),),
        servers=(JHServer("alice", "nb1", user_options={"profile": "gpu"}), JHServer("carol", "x", "X")),
        tokens=(),
        roles={},
        services=(),
    )
    now = datetime.now(UTC)
    async with make() as s:
        plan = plan_import(source, await load_state(s), source="t", policy=Policy(), now=now)
        await apply(s, plan.actions)
    async with make() as s:
        state = await load_state(s)
        again = plan_import(source, state, source="t", policy=Policy(), now=now)
    assert state.users == {
        "alice": (True, {"email": "new"}),
        "bob": (True, None),  # a hubkit admin stays one
        "carol": (False, None),
    }
    assert state.groups == {"students": ({"term": 3, "room": "A"}, {"alice", "bob", "carol"})}
    assert state.servers == {("alice", "nb1"): {"profile": "gpu"}, ("carol", "x"): {}}
    assert again.actions == [] and again.skipped == []
    assert again.tally["users"].unchanged == 3
