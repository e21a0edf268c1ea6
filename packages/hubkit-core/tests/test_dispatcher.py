"""The async-aware hook dispatcher and plugin validation at startup."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from hubkit.errors import PluginError
from hubkit.plugins import calling, hookimpl
from hubkit.plugins.hooks import Hooks
from hubkit.plugins.manager import build_plugin_manager

pytestmark = pytest.mark.timeout(60)


class AsyncDeclines:
    __name__ = "async_declines"

    @hookimpl(tryfirst=True)
    async def hubkit_normalize_username(self, name: str) -> str | None:
        await asyncio.sleep(0)
        return None


class SyncAnswers:
    __name__ = "sync_answers"

    @hookimpl
    def hubkit_normalize_username(self, name: str) -> str | None:
        return name.lower()


@pytest.mark.anyio
async def test_async_none_does_not_stop_firstresult():
    pm = build_plugin_manager(load_entry_points=False, extra=[SyncAnswers(), AsyncDeclines()])
    order = [impl.plugin_name for impl in calling._impls(pm, "hubkit_normalize_username")]
    assert order[0] == "async_declines"  # it really runs first
    assert await Hooks(pm).normalize_username("  ALICE") == "  alice"


@pytest.mark.anyio
async def test_blocking_sync_impl_does_not_block_loop():
    class Blocking:
        __name__ = "blocking"

        @hookimpl
        def hubkit_normalize_username(self, name: str) -> str | None:
            time.sleep(0.5)  # e.g. a PAM call
            return name

    pm = build_plugin_manager(load_entry_points=False, extra=[Blocking()])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        assert await Hooks(pm).normalize_username("bob") == "bob"
    finally:
        t.cancel()
    assert ticks >= 10  # the loop kept running while the plugin blocked


@pytest.mark.anyio
async def test_plugin_exception_names_plugin_and_distribution():
    class Broken:
        __name__ = "broken_rule"

        @hookimpl
        async def hubkit_check_allowed(self, result):
            raise KeyError("boom")

    pm = build_plugin_manager(load_entry_points=False, extra=[Broken()])
    from hubkit.interfaces import AuthResult

    with pytest.raises(PluginError) as info:
        await Hooks(pm).check_allowed(AuthResult(name="a"))
    assert info.value.plugin == "broken_rule"
    assert "broken_rule" in str(info.value) and "inline" in str(info.value) and "boom" in str(info.value)


@pytest.mark.anyio
async def test_broadcast_logs_and_continues(caplog):
    seen = []

    class Fails:
        __name__ = "fails"

        @hookimpl(tryfirst=True)
        def hubkit_user_created(self, user):
            raise RuntimeError("nope")

    class Sees:
        __name__ = "sees"

        @hookimpl
        async def hubkit_user_created(self, user):
            seen.append(user.name)

    from hubkit.interfaces import UserInfo

    pm = build_plugin_manager(load_entry_points=False, extra=[Fails(), Sees()])
    await Hooks(pm).user_created(UserInfo(name="zoe"))
    assert seen == ["zoe"]
    assert "fails" in caplog.text and "nope" in caplog.text


def test_unknown_hook_fails_startup():
    class Typo:
        __name__ = "typo_plugin"

        @hookimpl
        def hubkit_normalise_username(self, name):  # British spelling: not a hook
            return name

    with pytest.raises(PluginError, match=r"typo_plugin.*unknown hook"):
        build_plugin_manager(load_entry_points=False, extra=[Typo()])


def test_async_registration_hook_fails_startup():
    class AsyncReg:
        __name__ = "async_reg"

        @hookimpl
        async def hubkit_register_spawners(self, registry):
            return None

    with pytest.raises(PluginError, match=r"async_reg.*must not be async"):
        build_plugin_manager(load_entry_points=False, extra=[AsyncReg()])


def test_wrapper_on_runtime_hook_fails_startup():
    class Wrapper:
        __name__ = "wrapper"

        @hookimpl(wrapper=True)
        def hubkit_normalize_username(self, name):
            return (yield)

    with pytest.raises(PluginError, match="wrappers are not supported"):
        build_plugin_manager(load_entry_points=False, extra=[Wrapper()])


def test_broken_plugin_import_names_its_distribution(tmp_path: Path, monkeypatch):
    dist = tmp_path / "hubkit_broken_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hubkit-broken-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hubkit]\nbroken-demo = hubkit_broken_demo_missing.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("HUBKIT_DISABLE_PLUGINS", raising=False)
    with pytest.raises(PluginError) as info:
        build_plugin_manager(allow=["broken-demo"])
    msg = str(info.value)
    assert "broken-demo" in msg and "hubkit-broken-demo" in msg and "hubkit_broken_demo_missing" in msg
    assert "hubkit_broken_demo_missing" not in sys.modules


def test_duplicate_backend_name_fails():
    from hubkit.plugins.hooks import collect_registries

    class Dup:
        __name__ = "dup"

        @hookimpl
        def hubkit_register_spawners(self, registry):
            registry.add("test", object)

    pm = build_plugin_manager(load_entry_points=False, extra=[Dup()])
    with pytest.raises(PluginError, match="already registered"):
        collect_registries(pm)
