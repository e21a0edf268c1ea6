"""The single-user environment contract, limits, named servers, polling and in-process re-adoption."""

from __future__ import annotations

import json

import pytest
from hubkit.auth.tokens import hash_secret, lookup_token
from hubkit.errors import LimitReached, NotFound
from hubkit.interfaces import ServerSpec, UserInfo
from hubkit.spawn.env import build_env
from hubkit.spawn.poller import poll_once
from hubkit.storage.orm import OAuthClient, Server, ServerStatus, Spawn
from hubkit.testing.plugin import make_settings
from hubkit.urls import HubUrls
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def test_env_matches_compat_a2():
    urls = HubUrls(base_url="/", hub_connect_url="http://127.0.0.1:18081")
    env = build_env(urls, "alice", "", "tok")
    assert env["JUPYTERHUB_API_TOKEN"] == env["JPY_API_TOKEN"] == "tok"
    assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-alice"
    assert env["JUPYTERHUB_API_URL"] == "http://127.0.0.1:18081/hub/api"
    assert env["JUPYTERHUB_ACTIVITY_URL"] == "http://127.0.0.1:18081/hub/api/users/alice/activity"
    assert env["JUPYTERHUB_USER"] == "alice" and env["JUPYTERHUB_SERVER_NAME"] == ""
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/"
    assert env["JUPYTERHUB_BASE_URL"] == "/" and env["JUPYTERHUB_HOST"] == ""
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [
        "access:servers!server=alice/",
        "access:servers!user=alice",
    ]
    assert env["JUPYTERHUB_OAUTH_SCOPES"] == env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]
    assert env["JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES"] == "[]"
    assert env["JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED"] == "0"
    assert env["JUPYTERHUB_PUBLIC_URL"] == env["JUPYTERHUB_PUBLIC_HUB_URL"] == ""
    assert "JUPYTERHUB_DEFAULT_URL" not in env and "JUPYTERHUB_SERVICE_URL" not in env
    spec = ServerSpec(UserInfo("alice"), "", 1, "/user/alice/", urls.hub_api_url, env=env)
    assert (
        spec.env_with_url("127.0.0.1", 53663)["JUPYTERHUB_SERVICE_URL"]
        == "http://127.0.0.1:53663/user/alice/"
    )


def test_env_named_quoted_prefixed_public():
    urls = HubUrls(
        base_url="/jh/",
        hub_connect_url="http://hub:8081",
        public_url="https://hub.example.org",
        default_url="/lab",
    )
    env = build_env(urls, "a b@x", "nb 1", "tok")
    assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-a%20b@x-nb%201"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/jh/user/a%20b@x/nb%201/"
    assert env["JUPYTERHUB_API_URL"] == "http://hub:8081/jh/hub/api"
    assert env["JUPYTERHUB_SERVER_NAME"] == "nb 1"
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"])[0] == "access:servers!server=a b@x/nb 1"
    assert env["JUPYTERHUB_PUBLIC_URL"] == "https://hub.example.org/jh/user/a%20b@x/nb%201/"
    assert env["JUPYTERHUB_PUBLIC_HUB_URL"] == "https://hub.example.org/jh/hub/"
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab"


async def test_server_token_and_oauth_client_rows(hub, make_user, register_plugin):
    seen = {}

    class Grab:
        __name__ = "grab"

        from hubkit.plugins import hookimpl

        @hookimpl
        def hubkit_server_ready(self, spec, endpoint):
            seen["spec"] = spec

    register_plugin(Grab())
    await make_user("alice")
    assert await hub.spawns.wait(await hub.spawns.request_start("alice", "nb1"), 10) == "ready"
    spec = seen["spec"]
    token = spec.env["JUPYTERHUB_API_TOKEN"]
    assert spec.api_token == token
    async with hub.db() as s:
        row = await lookup_token(s, token)
        assert row is not None and row.kind == "server" and row.hashed == hash_secret(token)
        assert row.scopes == [
            "users:activity!user=alice",
            "access:servers!server=alice/nb1",
            "read:users:activity!user=alice",
        ]
        client = (await s.execute(select(OAuthClient))).scalar_one()
        assert client.identifier == "jupyterhub-user-alice-nb1"
        assert client.secret_hash == hash_secret(token)
        assert client.redirect_uri == "/user/alice/nb1/oauth_callback"
        assert client.description == "Server at /user/alice/nb1/"
        assert client.server_id == row.server_id
    assert await hub.spawns.stop("alice", "nb1", remove=True)
    async with hub.db() as s:
        assert await lookup_token(s, token) is None
        assert (await s.execute(select(OAuthClient))).scalars().all() == []
        assert (await s.execute(select(Server))).scalars().all() == []


async def test_named_server_limit_and_active_limit(hub_factory, tmp_path):
    hub = await hub_factory(
        make_settings(
            tmp_path / "h",
            hub={"named_server_limit_per_user": 2},
            spawner={"active_server_limit": 3},
        )
    )
    from hubkit.storage.orm import User

    async with hub.db() as s:
        s.add_all([User(name="n", cookie_id="c"), User(name="m", cookie_id="c")])
        await s.commit()
    for name in ("a", "b"):
        assert await hub.spawns.wait(await hub.spawns.request_start("n", name), 10) == "ready"
    with pytest.raises(LimitReached, match="2 named servers"):
        await hub.spawns.request_start("n", "c")
    assert await hub.spawns.wait(await hub.spawns.request_start("n"), 10) == "ready"
    with pytest.raises(LimitReached, match="maximum of 3"):
        await hub.spawns.request_start("m")
    with pytest.raises(NotFound):
        await hub.spawns.stop("n", "zzz")


async def test_named_servers_disabled(hub_factory, tmp_path):
    hub = await hub_factory(make_settings(tmp_path / "h", hub={"allow_named_servers": False}))
    with pytest.raises(LimitReached, match="not enabled"):
        await hub.spawns.request_start("anyone", "nb")


async def test_poller_removes_route_of_dead_server(hub, make_user):
    await make_user("dead")
    assert await hub.spawns.wait(await hub.spawns.request_start("dead"), 10) == "ready"
    route = (await hub.proxy.get_routes())["/user/dead/"]
    hub.spawner.kill(int(route.target.rsplit(":", 1)[1]))
    assert await poll_once(hub.spawns.sp) == 1
    assert "/user/dead/" not in await hub.proxy.get_routes()
    async with hub.db() as s:
        assert (await s.execute(select(Server.status))).scalar_one() == ServerStatus.STOPPED


async def test_readopt_in_process(hub_factory, tmp_path):
    """A second hub on the same DB keeps live servers, cleans dead ones and abandoned spawns."""
    settings = make_settings(tmp_path / "h")
    hub1 = await hub_factory(settings)
    from hubkit.storage.orm import User

    async with hub1.db() as s:
        s.add_all([User(name=n, cookie_id="c") for n in ("live", "gone", "queued")])
        await s.commit()
    for n in ("live", "gone"):
        assert await hub1.spawns.wait(await hub1.spawns.request_start(n), 10) == "ready"
    gone_port = int((await hub1.proxy.get_routes())["/user/gone/"].target.rsplit(":", 1)[1])
    await hub1.stop()
    hub1.spawner.kill(gone_port)
    async with hub1.db() as s:  # a spawn that was waiting in the old process's queue
        from sqlalchemy import update

        uid = (await s.execute(select(User.id).where(User.name == "queued"))).scalar_one()
        srv = Server(user_id=uid, name="", status=ServerStatus.QUEUED, state={})
        s.add(srv)
        await s.flush()
        spawn = Spawn(server_id=srv.id)
        s.add(spawn)
        await s.flush()
        await s.execute(update(Server).where(Server.id == srv.id).values(current_spawn_id=spawn.id))
        await s.commit()
        queued_spawn = spawn.id
    hub2 = await hub_factory(settings)
    await hub2.adoption.done.wait()
    assert hub2.adoption.kept == ["live/"]
    assert sorted(hub2.adoption.cleaned) == ["gone/", "queued/"]
    await hub2.routes.reconcile()
    assert set(await hub2.proxy.get_routes()) == {"/user/live/"}
    assert await hub2.spawns.wait(queued_spawn, 1) == "failed"
    events = [ev async for _s, ev in hub2.spawns.events(queued_spawn)]
    assert events[-1].reason_code == "hub-restarted"


async def test_servers_of_another_backend_are_left_alone(hub_factory, tmp_path):
    from hubkit.storage.orm import User

    settings = make_settings(tmp_path / "h")
    hub1 = await hub_factory(settings)
    async with hub1.db() as s:
        u = User(name="other", cookie_id="c")
        s.add(u)
        await s.flush()
        s.add(Server(user_id=u.id, name="", status=ServerStatus.RUNNING, backend="docker", url="http://x:1", state={}))
        await s.commit()
    await hub1.stop()
    hub2 = await hub_factory(settings)
    await hub2.adoption.done.wait()
    assert hub2.adoption.errors == ["other/"] and hub2.adoption.cleaned == []
    async with hub2.db() as s:
        assert (await s.execute(select(Server.status))).scalar_one() == ServerStatus.RUNNING


@pytest.mark.parametrize("mode", ["report", "remove"])
async def test_orphans_reported_or_removed_after_adoption(hub_factory, tmp_path, mode):
    """A stand-in listener no server row knows about (its hub died between start and saving state)."""
    settings = make_settings(tmp_path / mode, spawner={"reconcile_orphans": mode})
    hub1 = await hub_factory(settings)
    from hubkit.storage.orm import User

    async with hub1.db() as s:
        s.add(User(name="o", cookie_id="c"))
        await s.commit()
    assert await hub1.spawns.wait(await hub1.spawns.request_start("o"), 10) == "ready"
    port = int((await hub1.proxy.get_routes())["/user/o/"].target.rsplit(":", 1)[1])
    await hub1.stop()
    async with hub1.db() as s:  # forget the server: its listener is now an orphan
        from sqlalchemy import delete

        await s.execute(delete(Server))
        await s.commit()
    hub2 = await hub_factory(settings)
    await hub2.adoption.done.wait()
    orphans = hub2.adoption.orphans
    assert orphans is not None
    if mode == "remove":
        assert str(port) in orphans.removed and not hub1.spawner.serving(port)
    else:
        assert str(port) in orphans.reported and hub1.spawner.serving(port)
        hub1.spawner.kill(port)
