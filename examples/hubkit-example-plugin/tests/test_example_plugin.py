"""Tests of the example plugin, written with hubkit's pytest fixtures."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest
from hubkit.errors import ConfigError
from hubkit.interfaces import AuthResult
from hubkit.plugins.manager import build_plugin_manager
from hubkit.testing.plugin import make_settings
from hubkit_example_plugin import AuditPlugin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def audit() -> AuditPlugin:
    return AuditPlugin()  # a fresh instance per test (the entry point's is shared)


@pytest.fixture
def hub_plugins(audit):
    return [audit]


@pytest.fixture
def hub_settings(tmp_path):
    return make_settings(
        tmp_path / "hub",
        plugins={
            "example_audit": {
                "log_file": str(tmp_path / "routes.jsonl"),
                "refused_prefixes": ["guest-"],
                "server_env": {"TEAM": "research"},
            }
        },
    )


def test_entry_point_is_installed():
    names = {ep.name: ep.value for ep in entry_points(group="hubkit")}
    assert names.get("example-audit") == "hubkit_example_plugin.plugin:plugin"
    pm = build_plugin_manager(allow=["example-audit"])
    assert pm.has_plugin("example-audit")


async def test_route_changes_are_audited(hub, make_user, tmp_path):
    await make_user("alice")
    assert await hub.spawns.wait(await hub.spawns.request_start("alice"), 10) == "ready"
    assert await hub.spawns.stop("alice")
    lines = [json.loads(line) for line in (tmp_path / "routes.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["routespec"], r["user"]) for r in lines] == [
        ("added", "/user/alice/", "alice"),
        ("removed", "/user/alice/", "alice"),
    ]


async def test_prefix_rule(hub):
    assert await hub.hooks.check_allowed(AuthResult(name="guest-7")) is False
    assert await hub.hooks.check_allowed(AuthResult(name="alice")) is True


async def test_server_env(hub, make_user, register_plugin):
    from hubkit import hookimpl

    seen = {}

    class Spy:
        __name__ = "spy"

        @hookimpl
        def hubkit_server_ready(self, spec, endpoint):
            seen["env"] = dict(spec.env)

    register_plugin(Spy())
    await make_user("bob")
    assert await hub.spawns.wait(await hub.spawns.request_start("bob"), 10) == "ready"
    assert seen["env"]["TEAM"] == "research" and seen["env"]["JUPYTERHUB_USER"] == "bob"


async def test_bad_section_is_refused(tmp_path, hub_factory, audit):
    bad = make_settings(tmp_path / "bad", plugins={"example_audit": {"refused_prefix": ["x"]}})
    with pytest.raises(ConfigError, match=r"plugins\.example_audit\.refused_prefix: unknown key"):
        await hub_factory(bad, [audit])
