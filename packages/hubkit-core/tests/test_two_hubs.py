"""Two hubs in one process do not see each other: backends' hooks, plugins' configured hooks, encryption keys
and the stand-in spawner's servers all belong to the hub that built them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hubkit.builtin.dummy_auth import DummyAuthConfig, DummyAuthenticator
from hubkit.interfaces import AuthResult
from hubkit.plugins import hookimpl
from hubkit.storage.orm import User
from hubkit.testing.plugin import make_settings
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


class SuffixConfig(DummyAuthConfig):
    suffix: str = ""


class SuffixAuth(DummyAuthenticator):
    """An authenticator whose own runtime hook depends on its configuration."""

    config: SuffixConfig

    @hookimpl
    async def hubkit_normalize_username(self, name: str) -> str | None:
        return name + self.config.suffix


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refused_prefix: str = ""


class Rule:
    def __init__(self, config: RuleConfig) -> None:
        self.config = config

    @hookimpl
    def hubkit_check_allowed(self, result: AuthResult) -> bool | None:
        return False if result.name.startswith(self.config.refused_prefix) else None


class Plugin:
    """One stateless plugin object shared by both hubs, as an entry point's would be."""

    __name__ = "two-hubs"

    @hookimpl
    def hubkit_register_authenticators(self, registry: Any) -> None:
        registry.add("suffix", SuffixAuth, config=SuffixConfig)

    @hookimpl
    def hubkit_register_config(self, config: Any) -> None:
        config.add("rule", RuleConfig, hooks=Rule)


def settings(path: Path, tag: str, **hub: Any) -> Any:
    return make_settings(
        path,
        auth={"backend": "suffix", "suffix": {"suffix": f"-{tag}"}},
        plugins={"rule": {"refused_prefix": f"{tag}-"}},
        hub=hub,
    )


async def test_hooks_reach_their_own_hubs_instances(hub_factory: Any, tmp_path: Path) -> None:
    plugin = Plugin()
    a = await hub_factory(settings(tmp_path / "a", "a"), [plugin])
    b = await hub_factory(settings(tmp_path / "b", "b"), [plugin])
    assert await a.hooks.normalize_username("x") == "x-a"
    assert await b.hooks.normalize_username("x") == "x-b"
    assert await a.hooks.check_allowed(AuthResult("a-1")) is False
    assert await a.hooks.check_allowed(AuthResult("b-1")) is True
    assert await b.hooks.check_allowed(AuthResult("b-1")) is False
    assert await b.hooks.check_allowed(AuthResult("a-1")) is True


async def test_encryption_keys_are_per_hub(hub_factory: Any, tmp_path: Path) -> None:
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    a = await hub_factory(settings(tmp_path / "a", "a", crypt_keys=[key_a]), [Plugin()])
    b = await hub_factory(settings(tmp_path / "b", "b", crypt_keys=[key_b]), [Plugin()])
    none = await hub_factory(settings(tmp_path / "n", "n"), [Plugin()])
    for hub, secret in ((a, "for-a"), (b, "for-b")):
        async with hub.db() as s:
            s.add(User(name="u", cookie_id="c", auth_state={"token": secret}))
            await s.commit()
    async with a.db() as s:
        user_a = (await s.execute(select(User))).scalar_one()
        assert user_a.auth_state == {"token": "for-a"}
    async with b.db() as s:
        assert (await s.execute(select(User))).scalar_one().auth_state == {"token": "for-b"}
    assert a.crypt.enabled and b.crypt.enabled and not none.crypt.enabled
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        b.crypt.open(user_a.sealed_auth_state)  # hub b never holds hub a's keys


async def test_stand_in_servers_are_per_hub(hub_factory: Any, tmp_path: Path) -> None:
    """Same hub_id, different data directories (parallel test hubs): one's orphan sweep spares the other's."""
    a = await hub_factory(make_settings(tmp_path / "a"))
    b = await hub_factory(make_settings(tmp_path / "b"))
    for hub in (a, b):
        async with hub.db() as s:
            s.add(User(name="o", cookie_id="c"))
            await s.commit()
        assert await hub.spawns.wait(await hub.spawns.request_start("o"), 10) == "ready"
    port_a = int((await a.proxy.get_routes())["/user/o/"].target.rsplit(":", 1)[1])
    port_b = int((await b.proxy.get_routes())["/user/o/"].target.rsplit(":", 1)[1])
    report = await b.spawner.reconcile([], remove_orphans=True)  # b forgets its server: only it is an orphan
    assert report.removed == (str(port_b),)
    assert a.spawner.serving(port_a) and not b.spawner.serving(port_b)
