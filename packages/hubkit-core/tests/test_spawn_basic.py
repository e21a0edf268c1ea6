"""Start, progress, stop through the public SpawnEngine API with the test spawner."""

from __future__ import annotations

import pytest
from hubkit.errors import Conflict, NotFound
from hubkit.interfaces import Phase
from hubkit.storage.orm import APIToken, OAuthClient, Server, ServerStatus
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_start_ready_stop(hub, make_user):
    await make_user("alice")
    spawn_id = await hub.spawns.request_start("alice")
    assert await hub.spawns.wait(spawn_id, 10) == "ready"
    events = [ev async for _seq, ev in hub.spawns.events(spawn_id)]
    assert events[0].phase is Phase.REQUESTED
    assert events[-1].phase is Phase.READY and events[-1].detail["url"] == "/user/alice/"
    routes = await hub.proxy.get_routes()
    assert "/user/alice/" in routes
    async with hub.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        assert srv.status == ServerStatus.RUNNING and srv.url
        assert (await s.execute(select(APIToken).where(APIToken.server_id == srv.id))).scalars().all()
        assert (await s.execute(select(OAuthClient))).scalar_one().identifier == "jupyterhub-user-alice"
    with pytest.raises(Conflict):
        await hub.spawns.request_start("alice")
    assert await hub.spawns.stop("alice") is True
    assert "/user/alice/" not in await hub.proxy.get_routes()
    async with hub.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        assert srv.status == ServerStatus.STOPPED and srv.url is None
        assert not (await s.execute(select(APIToken))).scalars().all()
        assert not (await s.execute(select(OAuthClient))).scalars().all()
    assert await hub.spawns.latest_spawn_id("alice") == spawn_id


async def test_unknown_user(hub):
    with pytest.raises(NotFound):
        await hub.spawns.request_start("nobody")
