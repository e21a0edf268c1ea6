"""Spawn progress over SSE while a spawn is in flight: keepalives, JupyterHub event shape, 202 for slow spawns."""

from __future__ import annotations

import json

import pytest
from hubkit.api import progress as progress_api
from hubkit.services import servers as servers_service

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    s = make_settings(tmp_path / "hub")
    s.spawner.backends["stand-in"] = {"start_delay": 0.6}
    return s


async def test_slow_spawn_202_then_stream_with_keepalive(client, hub, admin_headers, monkeypatch):
    monkeypatch.setattr(servers_service, "SLOW_SPAWN_TIMEOUT", 0.05)
    await client.post("/hub/api/users/alice", headers=admin_headers)
    r = await client.post("/hub/api/users/alice/server", headers=admin_headers)
    assert r.status_code == 202 and r.content == b""
    assert (await client.post("/hub/api/users/alice/server", headers=admin_headers)).status_code == 202
    model = (await client.get("/hub/api/users/alice", headers=admin_headers)).json()
    assert model["servers"][""]["pending"] == "spawn" and model["servers"][""]["ready"] is False
    spawn_id = await hub.spawns.latest_spawn_id("alice")
    chunks = [c async for c in progress_api.stream(hub, spawn_id, "/user/alice/", keepalive=0.1)]
    assert b"\n\n" in chunks, "no keepalive while the spawner was busy"
    lines = b"".join(chunks).decode().splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
    assert len(ids) == len(events) and ids == sorted(set(ids))  # each event numbered (SSE id), once
    assert events[0]["progress"] == 0 and "message" in events[0]
    assert all(0 <= e["progress"] <= 100 for e in events)
    assert events[-1] == {
        "progress": 100,
        "ready": True,
        "message": "Server ready at /user/alice/",
        "html_message": 'Server ready at <a href="/user/alice/">/user/alice/</a>',
        "url": "/user/alice/",
        "phase": "ready",
    }
