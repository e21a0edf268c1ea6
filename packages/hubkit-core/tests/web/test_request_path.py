"""The path of a request (docs/plugins.md): a form login and a spawn from the spawn page, followed from the HTTP
request to the authenticator, the spawner and the proxy. The core modules on the call stack at each plugin call
are recorded and must be exactly the documented ones, so the documentation cannot drift from the code."""

from __future__ import annotations

import traceback
from typing import Any

import pytest
from hubkit.builtin.dummy_auth import DummyAuthConfig, DummyAuthenticator
from hubkit.builtin.null_proxy import NullProxy
from hubkit.builtin.standin import StandInConfig, StandInSpawner
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import EmptyConfig
from hubkit.testing.plugin import make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SAME = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}

# the six modules that do the work, then the two every request passes (middleware, error answering)
DOCUMENTED = {
    "hubkit.web.pages.login",
    "hubkit.services.login",
    "hubkit.web.pages.servers",
    "hubkit.services.servers",
    "hubkit.spawn.engine",
    "hubkit.routing.reconcile",
}
PLUMBING = {"hubkit.web.middleware", "hubkit.web.errors"}


def core_modules(stack: list[traceback.FrameSummary]) -> set[str]:
    out = set()
    for frame in stack:
        path = frame.filename.replace("\\", "/")
        if "/hubkit/" not in path or "/hubkit/builtin/" in path or "/hubkit/testing/" in path:
            continue
        module = "hubkit." + path.rsplit("/hubkit/", 1)[1].removesuffix(".py").replace("/", ".")
        out.add(module.removesuffix(".__init__"))
    return out


SEEN: dict[str, set[str]] = {}


class TracingAuth(DummyAuthenticator):
    async def authenticate(self, credentials: Any) -> Any:
        SEEN["authenticate"] = core_modules(traceback.extract_stack())
        return await super().authenticate(credentials)


class TracingSpawner(StandInSpawner):
    async def start(self, spec: Any, ctx: Any) -> Any:
        SEEN["start"] = core_modules(traceback.extract_stack())
        return await super().start(spec, ctx)


class TracingProxy(NullProxy):
    async def add_route(self, route: Any) -> None:
        SEEN["add_route"] = core_modules(traceback.extract_stack())
        await super().add_route(route)


class Plugin:
    __name__ = "tracing"

    @hookimpl
    def hubkit_register_authenticators(self, registry: Any) -> None:
        registry.add("tracing", TracingAuth, config=DummyAuthConfig)

    @hookimpl
    def hubkit_register_spawners(self, registry: Any) -> None:
        registry.add("tracing", TracingSpawner, config=StandInConfig)

    @hookimpl
    def hubkit_register_proxies(self, registry: Any) -> None:
        registry.add("tracing", TracingProxy, config=EmptyConfig)


@pytest.fixture
def hub_settings(tmp_path):
    return make_settings(
        tmp_path / "hub", auth={"backend": "tracing"}, spawner={"backend": "tracing"}, proxy={"backend": "tracing"}
    )


@pytest.fixture
def hub_plugins():
    return [Plugin()]


async def test_login_and_spawn_touch_the_documented_modules(client, hub, login):
    SEEN.clear()
    xsrf = await login("alice")
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf}, headers=SAME)
    assert r.status_code == 303
    spawn_id = await hub.spawns.latest_spawn_id("alice")
    assert await hub.spawns.wait(spawn_id, 20) == "ready"
    # the spawn runs as a task the engine started: its stack begins in the engine
    login = SEEN["authenticate"] - PLUMBING
    assert login == {"hubkit.web.pages.login", "hubkit.services.login"}
    assert SEEN["start"] == {"hubkit.spawn.engine"}
    assert SEEN["add_route"] == {"hubkit.spawn.engine", "hubkit.routing.reconcile"}
    assert SEEN["authenticate"] & PLUMBING == PLUMBING  # every request passes these two


async def test_the_spawn_request_reaches_the_engine_through_the_servers_service(client, hub, login, monkeypatch):
    seen: list[set[str]] = []
    original = hub.spawns.request_start

    async def request_start(*args: Any, **kw: Any) -> int:
        seen.append(core_modules(traceback.extract_stack()))
        return await original(*args, **kw)

    monkeypatch.setattr(hub.spawns, "request_start", request_start)
    xsrf = await login("bob")
    r = await client.post("/hub/spawn/bob", data={"_xsrf": xsrf}, headers=SAME)
    assert r.status_code == 303
    assert seen and seen[0] - PLUMBING == {"hubkit.web.pages.servers", "hubkit.services.servers"}
    union = set().union(*SEEN.values(), *seen) - PLUMBING
    assert union <= DOCUMENTED
