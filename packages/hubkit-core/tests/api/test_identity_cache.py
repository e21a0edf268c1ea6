"""The per-token / per-session identity cache never serves what was changed: revocation, expiry, admin flag,
rename, deletion, token scopes, service rights, group membership, logout-everywhere and server stop each take
effect on the very next request, on SQLite and on PostgreSQL. Each test first makes the caller's identity
cached (and checks that the cache really answered), then changes it the way the hub does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.auth.tokens import issue_token
from hubkit.plugins import hookimpl
from hubkit.runtime.app import create_app
from hubkit.services import tokens as token_service
from hubkit.services import users as user_service
from hubkit.storage.orm import APIToken, Service, User
from hubkit.testing.plugin import make_settings
from sqlalchemy import select, update

BASE = "http://127.0.0.1:8000"

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: Any, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite:///hubkit-test.sqlite"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def hub(db_url: str, tmp_path: Path, hub_factory: Any) -> Any:
    return await hub_factory(make_settings(tmp_path / "hub", hub={"db_url": db_url}))


@pytest.fixture
async def client(hub: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub)), base_url=BASE) as c:
        yield c


async def user_with_token(hub: Any, name: str, *, admin: bool = False, **kw: Any) -> tuple[int, str]:
    async with hub.db() as s:
        user = (await s.execute(select(User).where(User.name == name))).scalar_one_or_none()
        if user is None:
            user = user_service.new_user(name, admin=admin)
            s.add(user)
            await s.flush()
        secret, row = await issue_token(s, user_id=user.id, scopes=kw.pop("scopes", ["inherit"]), **kw)
        await s.commit()
        return row.id, secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"token {secret}"}


async def cached_get(hub: Any, client: httpx.AsyncClient, path: str, secret: str) -> httpx.Response:
    """Two requests: the second must be answered from the cache (a hit is counted)."""
    first = await client.get(path, headers=auth(secret))
    hits = hub.services.identities.hits
    second = await client.get(path, headers=auth(secret))
    assert hub.services.identities.hits == hits + 1, "the identity was not cached"
    assert second.status_code == first.status_code
    return second


async def test_revoked_token_refused_on_next_request(hub: Any, client: httpx.AsyncClient) -> None:
    tid, secret = await user_with_token(hub, "alice")
    assert (await cached_get(hub, client, "/hub/api/user", secret)).status_code == 200
    r = await client.delete(f"/hub/api/users/alice/tokens/a{tid}", headers=auth(secret))
    assert r.status_code == 204
    assert (await client.get("/hub/api/user", headers=auth(secret))).status_code == 403


async def test_every_revocation_path(hub: Any, client: httpx.AsyncClient) -> None:
    """The token page's revoke, logout-everywhere (all tokens) and user deletion."""
    ctx = hub.services
    tid, own = await user_with_token(hub, "bea")
    _, other = await user_with_token(hub, "bea")
    _, third = await user_with_token(hub, "bea")
    for secret in (own, other, third):
        assert (await cached_get(hub, client, "/hub/api/user", secret)).status_code == 200
    caller = await _identity(hub, own)
    await token_service.revoke_own_token(ctx, caller, str(tid))
    assert (await client.get("/hub/api/user", headers=auth(own))).status_code == 403
    assert (await client.get("/hub/api/user", headers=auth(other))).status_code == 200
    await user_service.revoke_all_tokens(ctx, "bea")
    assert (await client.get("/hub/api/user", headers=auth(other))).status_code == 403
    _, fresh = await user_with_token(hub, "bea")
    assert (await cached_get(hub, client, "/hub/api/user", fresh)).status_code == 200
    await user_service.delete_user(ctx, "bea")
    assert (await client.get("/hub/api/user", headers=auth(fresh))).status_code == 403


async def _identity(hub: Any, secret: str) -> Any:
    from hubkit.auth.identity import from_token

    ident = await from_token(hub.storage, secret, hub.services.identities)
    assert ident is not None
    return ident


async def test_expired_token_refused_although_cached(hub: Any, client: httpx.AsyncClient) -> None:
    _, secret = await user_with_token(hub, "carl", expires_in=1.5)
    assert (await cached_get(hub, client, "/hub/api/user", secret)).status_code == 200
    await asyncio.sleep(1.6)
    assert (await client.get("/hub/api/user", headers=auth(secret))).status_code == 403
    async with hub.db() as s:  # and the expired row is gone
        assert (await s.execute(select(APIToken).where(APIToken.user_id.is_not(None), APIToken.expires_at.is_not(None)))).first() is None


async def test_admin_flag_removed_takes_effect_at_once(hub: Any, client: httpx.AsyncClient) -> None:
    _, root = await user_with_token(hub, "root", admin=True)
    _, dana = await user_with_token(hub, "dana", admin=True)
    assert (await cached_get(hub, client, "/hub/api/users", dana)).status_code == 200
    r = await client.patch("/hub/api/users/dana", json={"admin": False}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert (await client.get("/hub/api/users", headers=auth(dana))).status_code == 403
    # and granted again: effective at once too
    assert (await cached_get(hub, client, "/hub/api/user", dana)).status_code == 200
    await user_service.set_admin(hub.services, "dana", True)
    assert (await client.get("/hub/api/users", headers=auth(dana))).status_code == 200


async def test_renamed_user_acts_under_the_new_name(hub: Any, client: httpx.AsyncClient) -> None:
    _, root = await user_with_token(hub, "root", admin=True)
    _, erin = await user_with_token(hub, "erin")
    assert (await cached_get(hub, client, "/hub/api/users/erin", erin)).status_code == 200
    r = await client.patch("/hub/api/users/erin", json={"name": "erika"}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert (await client.get("/hub/api/user", headers=auth(erin))).json()["name"] == "erika"
    assert (await client.get("/hub/api/users/erika", headers=auth(erin))).status_code == 200
    # a new user named erin is someone else: the old token must not reach them
    await user_with_token(hub, "erin")
    assert (await client.get("/hub/api/users/erin", headers=auth(erin))).status_code == 404


async def test_token_scopes_changed_in_the_database(hub: Any, client: httpx.AsyncClient) -> None:
    tid, secret = await user_with_token(hub, "fay", admin=True)
    assert (await cached_get(hub, client, "/hub/api/users", secret)).status_code == 200
    async with hub.services.storage.tx() as s:  # a bulk UPDATE, as the importer and future code would write
        await s.execute(update(APIToken).where(APIToken.id == tid).values(scopes=["read:users!user"]))
        await s.commit()
    assert (await client.get("/hub/api/users", headers=auth(secret))).status_code == 403
    assert (await client.get("/hub/api/users/fay", headers=auth(secret))).status_code == 200


async def test_service_rights_changed(hub: Any, client: httpx.AsyncClient) -> None:
    async with hub.db() as s:
        svc = Service(name="culler", admin=True, scopes=[])
        s.add(svc)
        await s.flush()
        secret, _ = await issue_token(s, service_id=svc.id, scopes=["inherit"])
        await s.commit()
    await user_with_token(hub, "gus")
    assert (await cached_get(hub, client, "/hub/api/users/gus", secret)).status_code == 200
    async with hub.db() as s:  # the unit of work: an ORM attribute change
        row = (await s.execute(select(Service).where(Service.name == "culler"))).scalar_one()
        row.admin = False
        await s.commit()
    assert (await client.get("/hub/api/users/gus", headers=auth(secret))).status_code == 403


async def test_group_membership_change_applies_to_group_scoped_tokens(hub: Any, client: httpx.AsyncClient) -> None:
    _, root = await user_with_token(hub, "root", admin=True)
    _, narrow = await user_with_token(hub, "root", scopes=["read:users!group=staff"])
    await user_with_token(hub, "hal")
    assert (await client.post("/hub/api/groups/staff", headers=auth(root))).status_code == 201
    r = await client.post("/hub/api/groups/staff/users", json={"users": ["hal"]}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert (await cached_get(hub, client, "/hub/api/users/hal", narrow)).status_code == 200
    r = await client.request("DELETE", "/hub/api/groups/staff/users", json={"users": ["hal"]}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert (await client.get("/hub/api/users/hal", headers=auth(narrow))).status_code == 404


async def test_session_ends_with_logout_everywhere_and_admin_change(
    hub: Any, client: httpx.AsyncClient, login: Any
) -> None:
    await login("ivy")
    assert (await cached_get_cookie(hub, client, "/hub/api/user")).status_code == 200
    await user_service.set_admin(hub.services, "ivy", True)
    r = await client.get("/hub/api/user", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.json()["admin"] is True
    await user_service.revoke_all_tokens(hub.services, "ivy")  # rotates cookie_id: every session ends
    r = await client.get("/hub/api/user", headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 403


async def cached_get_cookie(hub: Any, client: httpx.AsyncClient, path: str) -> httpx.Response:
    h = {"Sec-Fetch-Site": "same-origin"}
    await client.get(path, headers=h)
    hits = hub.services.identities.hits
    r = await client.get(path, headers=h)
    assert hub.services.identities.hits == hits + 1
    return r


class TokenCatcher:
    __name__ = "token-catcher"

    def __init__(self) -> None:
        self.tokens: list[str] = []

    @hookimpl
    def hubkit_pre_spawn(self, spec: Any) -> None:
        self.tokens.append(spec.api_token)


async def test_server_token_refused_once_its_server_stopped(
    hub: Any, client: httpx.AsyncClient, register_plugin: Any
) -> None:
    catcher = TokenCatcher()
    register_plugin(catcher)
    await user_with_token(hub, "jo")
    spawn = await hub.spawns.request_start("jo")
    assert await hub.spawns.wait(spawn, 30) == "ready"
    (secret,) = catcher.tokens
    r = await cached_get(hub, client, "/hub/api/user", secret)
    assert r.status_code == 200 and r.json()["name"] == "jo"
    assert await hub.spawns.stop("jo")
    assert (await client.get("/hub/api/user", headers=auth(secret))).status_code == 403


async def test_writes_by_another_process_show_within_max_age(hub: Any, client: httpx.AsyncClient) -> None:
    """A write the feed cannot see (another process on the same database, here a separate engine) is honoured
    once the cached entry is older than the feed's max_age; that bound is what the docs promise."""
    from hubkit.storage.engine import create_engine, create_sessionmaker, normalize_url

    feed = hub.storage.changes
    if hasattr(feed, "listening_max_age"):  # PostgreSQL: hears other hubs, so trusts copies 30 s; not here
        feed.listening_max_age = 1.0
    tid, secret = await user_with_token(hub, "kim")
    assert (await cached_get(hub, client, "/hub/api/user", secret)).status_code == 200
    other = create_engine(normalize_url(hub.settings.hub.db_url, hub.info.data_dir))
    try:
        async with create_sessionmaker(other)() as s:  # no feed: this process's cache is not told
            await s.execute(APIToken.__table__.delete().where(APIToken.__table__.c.id == tid))
            await s.commit()
    finally:
        await other.dispose()
    await asyncio.sleep(hub.services.identities.max_age + 0.1)
    assert (await client.get("/hub/api/user", headers=auth(secret))).status_code == 403
