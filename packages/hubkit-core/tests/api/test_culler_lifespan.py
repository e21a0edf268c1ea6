"""With ``[culler] enabled`` the app's lifespan runs the culler on its own: an idle server is stopped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hubkit.runtime.app import create_app
from hubkit.storage.orm import Server, ServerStatus
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    return make_settings(tmp_path / "hub", culler={"enabled": True, "every": 0.2, "timeout": 60})


async def test_lifespan_runs_culler(hub, make_user):
    await make_user("alice")
    sid = await hub.spawns.request_start("alice")
    assert await hub.spawns.wait(sid, 20) == "ready"
    async with hub.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        srv.last_activity = datetime.now(UTC) - timedelta(seconds=120)
        await s.commit()
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        for _ in range(100):
            async with hub.db() as s:
                status = (await s.execute(select(Server.status))).scalar_one()
            if status == ServerStatus.STOPPED:
                break
            await asyncio.sleep(0.1)
    assert status == ServerStatus.STOPPED
    text = (await app.state.metrics.render(hub)).decode()
    assert 'hubkit_culled_servers_total{why="idle"} 1.0' in text
