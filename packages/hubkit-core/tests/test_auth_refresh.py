"""Credentials are refreshed before every spawn: a refreshed auth_state is stored, an expired login fails the
spawn with ``auth-expired`` and starts nothing."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.fernet import Fernet
from hubkit import hookimpl
from hubkit.builtin.dummy_auth import DummyAuthConfig, DummyAuthenticator
from hubkit.interfaces import AuthResult, JSONDict, UserInfo
from hubkit.storage.orm import Server, ServerStatus, SpawnEvent, User
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

pytestmark = pytest.mark.anyio


class RefreshingAuth(DummyAuthenticator):
    calls: ClassVar[list[tuple[str, Any]]] = []

    async def refresh_user(self, user: UserInfo, auth_state: JSONDict | None) -> AuthResult | bool:
        self.calls.append((user.name, auth_state))
        if user.name == "expired":
            return False
        return AuthResult(name=user.name, auth_state={"access_token": "fresh"})


class Plugin:
    __name__ = "refreshing-auth"

    @hookimpl
    def hubkit_register_authenticators(self, registry: Any) -> None:
        registry.add("refreshing", RefreshingAuth, config=DummyAuthConfig)


async def test_refresh_before_spawn(hub_factory: Any, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "hub", auth={"backend": "refreshing"}, hub={"crypt_keys": [Fernet.generate_key().decode()]}
    )
    hub = await hub_factory(settings, [Plugin()])
    async with hub.db() as s:
        s.add(User(name="fresh", cookie_id=secrets.token_hex(8), auth_state={"access_token": "stale"}))
        s.add(User(name="expired", cookie_id=secrets.token_hex(8), auth_state={"access_token": "old"}))
        await s.commit()

    ok = await hub.spawns.request_start("fresh")
    assert await hub.spawns.wait(ok, 30) == "ready"
    bad = await hub.spawns.request_start("expired")
    assert await hub.spawns.wait(bad, 30) == "failed"

    assert ("fresh", {"access_token": "stale"}) in RefreshingAuth.calls
    async with hub.db() as s:
        fresh = (await s.execute(select(User).where(User.name == "fresh"))).scalar_one()
        assert fresh.auth_state == {"access_token": "fresh"}
        expired = (await s.execute(select(User).where(User.name == "expired"))).scalar_one()
        assert expired.auth_state == {"access_token": "old"}
        server = (await s.execute(select(Server).where(Server.user_id == expired.id))).scalar_one()
        assert server.status is ServerStatus.STOPPED
        codes = (await s.execute(select(SpawnEvent.reason_code).where(SpawnEvent.spawn_id == bad))).scalars().all()
        assert "auth-expired" in codes
