"""One ``test_hook_<name>`` per hook spec (the meta-test checks they exist): each drives the hook through the
real hub or dispatcher and checks its documented effect."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hubkit.builtin.dummy_auth import DummyAuthConfig, DummyAuthenticator
from hubkit.builtin.null_proxy import NullProxy
from hubkit.builtin.standin import StandInConfig, StandInSpawner
from hubkit.errors import ConfigError, SpawnFailed
from hubkit.interfaces import AuthResult, ExitStatus, Phase, RouteChangeKind, UserInfo, WebRoute
from hubkit.plugins import hookimpl
from hubkit.plugins.hooks import Hooks, collect_registries
from hubkit.plugins.manager import build_plugin_manager
from hubkit.plugins.registry import EmptyConfig
from hubkit.runtime.backends import plugin_config
from hubkit.testing.plugin import make_settings
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


class Recorder:
    """Records every runtime hook call it sees."""

    __name__ = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def hubkit_server_ready(self, spec, endpoint):
        self.calls.append(("ready", (spec, endpoint)))

    @hookimpl
    async def hubkit_post_stop(self, spec, status):
        self.calls.append(("post_stop", (spec, status)))

    @hookimpl
    def hubkit_route_changed(self, change):
        self.calls.append(("route", change))

    def of(self, kind: str) -> list[Any]:
        return [v for k, v in self.calls if k == kind]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def hub_plugins(recorder):
    return [recorder]


async def test_hook_hubkit_register_authenticators(tmp_path, hub_factory):
    class FancyConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        greeting: str = "hi"

    class Fancy(DummyAuthenticator):  # a whole authenticator: the hub checks the protocol at startup
        def __init__(self, config: FancyConfig, hub: Any) -> None:
            super().__init__(DummyAuthConfig(), hub)
            self.config = config  # type: ignore[assignment]

        async def startup(self) -> None:
            return None

    class Plugin:
        __name__ = "fancy"

        @hookimpl
        def hubkit_register_authenticators(self, registry):
            registry.add("fancy", Fancy, config=FancyConfig, description="test")

    settings = make_settings(tmp_path / "h", auth={"backend": "fancy", "fancy": {"greeting": "hello"}})
    hub = await hub_factory(settings, [Plugin()])
    assert isinstance(hub.authenticator, Fancy) and hub.authenticator.config.greeting == "hello"


async def test_hook_hubkit_register_spawners(tmp_path, hub_factory, make_user=None):
    class Counting(StandInSpawner):
        starts = 0

        async def start(self, spec, ctx):
            Counting.starts += 1
            return await super().start(spec, ctx)

    class Plugin:
        __name__ = "counting"

        @hookimpl
        def hubkit_register_spawners(self, registry):
            registry.add("counting", Counting, config=StandInConfig)

    hub = await hub_factory(make_settings(tmp_path / "h", spawner={"backend": "counting"}), [Plugin()])
    from hubkit.storage.orm import User

    async with hub.db() as s:
        s.add(User(name="c", cookie_id="x"))
        await s.commit()
    assert await hub.spawns.wait(await hub.spawns.request_start("c"), 10) == "ready"
    assert Counting.starts == 1


async def test_hook_hubkit_register_proxies(tmp_path, hub_factory):
    class Remembering(NullProxy):
        pass

    class Plugin:
        __name__ = "remembering"

        @hookimpl
        def hubkit_register_proxies(self, registry):
            registry.add("remembering", Remembering, config=EmptyConfig)

    hub = await hub_factory(make_settings(tmp_path / "h", proxy={"backend": "remembering"}), [Plugin()])
    assert type(hub.proxy) is Remembering


MIGRATION = '''
revision = "p0001"
down_revision = None
branch_labels = ("hubkit-test-plugin",)
depends_on = None

import sqlalchemy as sa
from alembic import op


def upgrade():
    op.create_table("plugin_notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(50)))


def downgrade():
    op.drop_table("plugin_notes")
'''


async def test_hook_hubkit_register_storage(tmp_path, hub_factory):
    versions = tmp_path / "plugin_versions"
    versions.mkdir()
    (versions / "p0001_notes.py").write_text(MIGRATION)
    md = MetaData()
    Table("plugin_notes", md, Column("id", Integer, primary_key=True), Column("note", String(50)))

    class Plugin:
        __name__ = "notes"

        @hookimpl
        def hubkit_register_storage(self, storage):
            storage.add_metadata(md)
            storage.add_migrations(str(versions), branch="hubkit-test-plugin")

    hub = await hub_factory(make_settings(tmp_path / "h"), [Plugin()])
    async with hub.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert "plugin_notes" in tables and "users" in tables
    from hubkit.storage import migrate

    assert await migrate.current_heads(hub.engine) == {*migrate.script_heads(), "p0001"}
    assert await migrate.schema_diff(hub.engine, hub.registries.storage) == []


async def test_hook_hubkit_register_web_routes():
    async def app(scope, receive, send):
        return None

    class Plugin:
        __name__ = "webby"

        @hookimpl
        def hubkit_register_web_routes(self, routes):
            routes.add(WebRoute(path="/hub/webby", app=app, name="webby"))

    regs = collect_registries(build_plugin_manager(load_entry_points=False, extra=[Plugin()]))
    assert [r.path for r in regs.web_routes.routes] == ["/hub/webby"]


async def test_hook_hubkit_register_config(tmp_path):
    class Quota(BaseModel):
        model_config = ConfigDict(extra="forbid")
        gigabytes: int = 10

    class Plugin:
        __name__ = "quota"

        @hookimpl
        def hubkit_register_config(self, config):
            config.add("quota", Quota)

    regs = collect_registries(build_plugin_manager(load_entry_points=False, extra=[Plugin()]))
    from hubkit.runtime.backends import validate_sections

    ok = make_settings(tmp_path, plugins={"quota": {"gigabytes": 20}})
    validate_sections(ok, regs)
    assert plugin_config(ok, regs, "quota").gigabytes == 20
    bad = make_settings(tmp_path, plugins={"quota": {"gigabites": 20}})
    with pytest.raises(ConfigError, match=r"plugins\.quota\.gigabites"):
        validate_sections(bad, regs)


async def test_hook_hubkit_normalize_username():
    class Lower:
        __name__ = "lower"

        @hookimpl
        async def hubkit_normalize_username(self, name):
            return name.lower()

    hooks = Hooks(build_plugin_manager(load_entry_points=False, extra=[Lower()]))
    assert await hooks.normalize_username("Alice") == "alice"
    bare = Hooks(build_plugin_manager(load_entry_points=False))
    assert await bare.normalize_username("  Alice ") == "Alice"  # the core's fallback strips


async def test_hook_hubkit_check_allowed():
    from hubkit.builtin.allow_list import AllowList

    class NoBob:
        __name__ = "no_bob"

        @hookimpl
        def hubkit_check_allowed(self, result):
            return False if result.name == "bob" else None

    hooks = Hooks(build_plugin_manager(load_entry_points=False, extra=[NoBob(), AllowList(blocked=["eve"])]))
    assert await hooks.check_allowed(AuthResult(name="alice")) is True
    assert await hooks.check_allowed(AuthResult(name="bob")) is False
    assert await hooks.check_allowed(AuthResult(name="eve")) is False


async def test_hook_hubkit_post_auth():
    class AddGroup:
        __name__ = "add_group"

        @hookimpl
        def hubkit_post_auth(self, result):
            return dataclasses.replace(result, groups=(*(result.groups or ()), "staff"))

    class MakeAdmin:
        __name__ = "make_admin"

        @hookimpl(trylast=True)
        async def hubkit_post_auth(self, result):
            return dataclasses.replace(result, admin="staff" in (result.groups or ()))

    hooks = Hooks(build_plugin_manager(load_entry_points=False, extra=[AddGroup(), MakeAdmin()]))
    out = await hooks.post_auth(AuthResult(name="a"))
    assert out.groups == ("staff",) and out.admin is True


async def test_hook_hubkit_pre_spawn(hub, make_user, register_plugin, recorder):
    class Env:
        __name__ = "env"

        @hookimpl
        def hubkit_pre_spawn(self, spec):
            if spec.user_options.get("refuse"):
                raise SpawnFailed("quota exceeded", reason_code="quota")
            return dataclasses.replace(spec, env={**spec.env, "EXTRA": "1"})

    register_plugin(Env())
    await make_user("p")
    assert await hub.spawns.wait(await hub.spawns.request_start("p"), 10) == "ready"
    (spec, _endpoint) = recorder.of("ready")[0]
    assert spec.env["EXTRA"] == "1" and spec.env["JUPYTERHUB_USER"] == "p"
    await hub.spawns.stop("p")
    sid = await hub.spawns.request_start("p", "", {"refuse": True})
    assert await hub.spawns.wait(sid, 10) == "failed"
    last = [ev async for _s, ev in hub.spawns.events(sid)][-1]
    assert last.reason_code == "quota" and "quota exceeded" in last.message


async def test_hook_hubkit_server_ready(hub, make_user, recorder):
    await make_user("r")
    assert await hub.spawns.wait(await hub.spawns.request_start("r"), 10) == "ready"
    [(spec, endpoint)] = recorder.of("ready")
    assert spec.url_prefix == "/user/r/" and endpoint.url.startswith("http://127.0.0.1:")


async def test_hook_hubkit_post_stop(hub, make_user, recorder):
    from hubkit.spawn.poller import poll_once

    await make_user("s")
    await make_user("d")
    for u in ("s", "d"):
        assert await hub.spawns.wait(await hub.spawns.request_start(u), 10) == "ready"
    assert await hub.spawns.stop("s")
    # "d" dies behind the hub's back: the poller notices
    port = int((await hub.proxy.get_routes())["/user/d/"].target.rsplit(":", 1)[1])
    hub.spawner.kill(port)
    assert await poll_once(hub.spawns.sp) == 1
    stops = {spec.user.name: status for spec, status in recorder.of("post_stop")}
    assert stops["s"] is None
    assert isinstance(stops["d"], ExitStatus)


async def test_hook_hubkit_user_created(recorder):
    seen = []

    class P:
        __name__ = "p"

        @hookimpl
        async def hubkit_user_created(self, user):
            seen.append(user)

    await Hooks(build_plugin_manager(load_entry_points=False, extra=[P()])).user_created(UserInfo(name="n"))
    assert seen == [UserInfo(name="n")]


async def test_hook_hubkit_check_new_user(hub, register_plugin, make_user):
    from hubkit.errors import InvalidName
    from hubkit.services import users
    from hubkit.storage.orm import User
    from sqlalchemy import select

    asked: list[str] = []

    class P:
        __name__ = "p"

        @hookimpl
        async def hubkit_check_new_user(self, name):
            asked.append(name)
            return f"{name!r} is not wanted here" if name.startswith("no") else None

    register_plugin(P())
    await make_user("nobody-old")  # exists: not asked again, not refused
    with pytest.raises(InvalidName, match="'nope' is not wanted here; no user was added"):
        await users.create_users(hub.services, ["fine", "nobody-old", "nope"])
    async with hub.db() as s:
        assert set((await s.execute(select(User.name))).scalars()) == {"nobody-old"}  # nothing stored
    assert asked == ["fine", "nope"]  # only the new names
    created = await users.create_users(hub.services, ["fine", "nobody-old"])
    assert [u.name for u in created] == ["fine"]


async def test_hook_hubkit_user_deleted():
    seen = []

    class P:
        __name__ = "p"

        @hookimpl
        def hubkit_user_deleted(self, user):
            seen.append(user.name)

    await Hooks(build_plugin_manager(load_entry_points=False, extra=[P()])).user_deleted(UserInfo(name="gone"))
    assert seen == ["gone"]


async def test_hook_hubkit_route_changed(hub, make_user, recorder):
    await make_user("rc")
    assert await hub.spawns.wait(await hub.spawns.request_start("rc"), 10) == "ready"
    await hub.spawns.stop("rc")
    kinds = [(c.kind, c.route.routespec) for c in recorder.of("route")]
    assert kinds == [(RouteChangeKind.ADDED, "/user/rc/"), (RouteChangeKind.REMOVED, "/user/rc/")]


async def test_progress_phases_in_order(hub, make_user):
    await make_user("ph")
    sid = await hub.spawns.request_start("ph")
    phases = [ev.phase async for _s, ev in hub.spawns.events(sid)]
    assert phases[0] is Phase.REQUESTED and phases[-1] is Phase.READY
    assert Phase.WAITING_HTTP in phases
