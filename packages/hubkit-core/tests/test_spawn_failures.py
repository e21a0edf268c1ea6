"""Spawners that raise, crash, hang in start, or never answer HTTP: a clear failure, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import anyio
import pytest
from hubkit.errors import LimitReached
from hubkit.interfaces import Phase
from hubkit.storage.orm import APIToken, OAuthClient, Server, ServerStatus, Spawn
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def tiny_servers_of(user: str) -> list[int]:
    """pids of live tiny_server processes started for ``user`` (read from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"hubkit.builtin.tiny_server" not in cmd:
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"JUPYTERHUB_USER={user}".encode() in env and stat[0] != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def hub_settings(tmp_path):
    return make_settings(
        tmp_path / "hub",
        spawner={"start_timeout": 1.5, "http_timeout": 1.5, "stop_timeout": 5, "stand-in": {"mode": "process"}},
    )


@pytest.mark.parametrize(
    ("behaviour", "reason_code"),
    [
        ("raise", "test-failure"),
        ("crash", "exited"),
        ("hang", "timeout-start"),
        ("hang-http", "timeout-http"),
    ],
)
async def test_failure_is_clear_and_clean(hub, make_user, behaviour, reason_code):
    user = await make_user(f"f-{behaviour}")
    spawn_id = await hub.spawns.request_start(user, "", {"behaviour": behaviour})
    assert await hub.spawns.wait(spawn_id, 20) == "failed"
    events = [ev async for _seq, ev in hub.spawns.events(spawn_id)]
    last = events[-1]
    assert last.phase is Phase.FAILED and last.reason_code == reason_code
    assert last.message.startswith("Spawn failed: ")
    assert tiny_servers_of(user) == []
    assert f"/user/{user}/" not in await hub.proxy.get_routes()
    async with hub.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        assert srv.status == ServerStatus.STOPPED and srv.state == {} and srv.url is None
        assert (await s.execute(select(APIToken))).scalars().all() == []
        assert (await s.execute(select(OAuthClient))).scalars().all() == []
        spawn = await s.get(Spawn, spawn_id)
        assert spawn.outcome == "failed" and spawn.reason_code == reason_code
    # the failure is readable later, from the database alone
    stored = await hub.spawns.progress.stored(spawn_id)
    assert stored[-1][1].reason_code == reason_code
    # and the server can be started again
    again = await hub.spawns.request_start(user)
    assert await hub.spawns.wait(again, 20) == "ready"
    assert len(tiny_servers_of(user)) == 1
    assert await hub.spawns.stop(user)
    assert tiny_servers_of(user) == []


async def test_crash_failure_carries_log_tail(hub, make_user):
    user = await make_user("logtail")
    spawn_id = await hub.spawns.request_start(user, "", {"behaviour": "crash"})
    assert await hub.spawns.wait(spawn_id, 20) == "failed"
    events = [ev async for _seq, ev in hub.spawns.events(spawn_id)]
    assert any("crashing on purpose" in line for line in events[-1].detail.get("log_tail", []))


async def test_consecutive_failure_guard(hub_factory, tmp_path, make_user=None):
    hub = await hub_factory(make_settings(tmp_path / "g", spawner={"consecutive_failure_limit": 2}))
    from hubkit.storage.orm import User

    async with hub.db() as s:
        s.add_all([User(name=n, cookie_id="c") for n in ("g1", "g2", "g3")])
        await s.commit()
    for name in ("g1", "g2"):
        sid = await hub.spawns.request_start(name, "", {"behaviour": "raise"})
        assert await hub.spawns.wait(sid, 10) == "failed"
    with pytest.raises(LimitReached, match="2 failed spawns in a row"):
        await hub.spawns.request_start("g3")


async def test_killed_while_recording_a_failure_leaves_nothing_open(hub_factory, tmp_path, monkeypatch):
    """A process that dies while it records a failed spawn (here: the failure's write raises) must leave either
    both the reset server and the spawn's outcome, or neither: the next hub (or, with replicas, the take-over)
    finishes a server still in a transient state, but nothing ever finishes a spawn beside a stopped server.
    The spawn's task is stopped at that write (cancelled, as nothing after a kill runs either)."""
    from hubkit.storage.orm import User

    settings = make_settings(tmp_path / "h", spawner={"stand-in": {"mode": "process"}})
    hub1 = await hub_factory(settings)
    async with hub1.db() as s:
        s.add(User(name="dies", cookie_id="c"))
        await s.commit()
    store = hub1.spawns.progress
    real_add = store.add

    async def add(s, spawn_id, event):
        if event.phase is Phase.FAILED:
            raise asyncio.CancelledError  # the process died here
        return await real_add(s, spawn_id, event)

    monkeypatch.setattr(store, "add", add)
    spawn_id = await hub1.spawns.request_start("dies", "", {"behaviour": "raise"})
    for _ in range(400):  # the spawn task ends (with the simulated death) within a few seconds
        if not hub1.spawns.inflight.is_live(spawn_id):
            break
        await anyio.sleep(0.05)
    assert not hub1.spawns.inflight.is_live(spawn_id)
    await hub1.stop()
    async with hub1.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        spawn = await s.get(Spawn, spawn_id)
    assert spawn.outcome is None and srv.status != ServerStatus.STOPPED, "rolled back together"

    hub2 = await hub_factory(settings)
    await hub2.adoption.done.wait()
    assert await hub2.spawns.wait(spawn_id, 1) == "failed"
    async with hub2.db() as s:
        assert (await s.execute(select(Server.status))).scalar_one() == ServerStatus.STOPPED
    events = [ev async for _s, ev in hub2.spawns.events(spawn_id)]
    assert events[-1].reason_code == "hub-restarted"


async def test_server_gone_after_a_restart_mid_spawn_ends_the_spawn_with_why(hub_factory, tmp_path):
    """A hub that died after its server answered but before it recorded "ready" leaves a starting row with a
    URL. If that server is gone too when the next hub adopts it, the spawn ends failed with the cause, and the
    row is reset with it (one write), never a stopped server beside an open spawn."""
    from hubkit.storage.orm import SpawnEvent, User
    from sqlalchemy import delete, update

    settings = make_settings(tmp_path / "h", spawner={"stand-in": {"mode": "process"}})
    hub1 = await hub_factory(settings)
    async with hub1.db() as s:
        s.add(User(name="midway", cookie_id="c"))
        await s.commit()
    spawn_id = await hub1.spawns.request_start("midway")
    assert await hub1.spawns.wait(spawn_id, 20) == "ready"
    (pid,) = tiny_servers_of("midway")
    await hub1.stop()
    async with hub1.db() as s:  # as hub1 would have left it a moment before "ready"
        await s.execute(update(Server).values(status=ServerStatus.STARTING))
        await s.execute(update(Spawn).where(Spawn.id == spawn_id).values(outcome=None, finished=None))
        await s.execute(delete(SpawnEvent).where(SpawnEvent.spawn_id == spawn_id, SpawnEvent.phase == "ready"))
        await s.commit()
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not tiny_servers_of("midway"):
            break
        await anyio.sleep(0.05)
    assert tiny_servers_of("midway") == []

    hub2 = await hub_factory(settings)
    await hub2.adoption.done.wait()
    assert hub2.adoption.cleaned == ["midway/"]
    assert await hub2.spawns.wait(spawn_id, 1) == "failed"
    async with hub2.db() as s:
        srv = (await s.execute(select(Server))).scalar_one()
        spawn = await s.get(Spawn, spawn_id)
    assert srv.status == ServerStatus.STOPPED and srv.url is None and srv.state == {}
    assert spawn.reason_code == "hub-restarted" and "the server exited after" in spawn.message
    events = [ev async for _s, ev in hub2.spawns.events(spawn_id)]
    assert events[-1].phase is Phase.FAILED and events[-1].reason_code == "hub-restarted"
    assert "/user/midway/" not in await hub2.proxy.get_routes()
