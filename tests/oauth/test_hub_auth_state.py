"""Single-user servers get fresh upstream tokens from the hub (``GET /hub/api/users/{name}/auth-state``)
instead of tokens frozen into their environment: the hub refreshes them with the real OP first."""

from __future__ import annotations

import time

import httpx
import pytest
from hubkit.auth.tokens import issue_token
from hubkit.storage.orm import User
from oauth_helpers import RunningHub, browse, wait_until_due
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def _token(rh: RunningHub, name: str, scopes: list[str], kind: str = "api_token") -> str:
    async with rh.hub.db() as session:
        user = (await session.execute(select(User).where(User.name == name))).scalar_one()
        secret, _ = await issue_token(session, user_id=user.id, scopes=scopes, note="oauth test", kind=kind)
        await session.commit()
    return secret


async def test_auth_state_endpoint_refreshes_before_answering(running_hub: RunningHub) -> None:
    rh = running_hub
    for who in ("alice", "bob"):
        async with httpx.AsyncClient() as browser:
            await browse(browser, f"{rh.url}/hub/oauth_login", login=who)
    async with rh.hub.db() as session:
        bob = (await session.execute(select(User).where(User.name == "bob"))).scalar_one()
        old = dict(bob.auth_state)
    await wait_until_due(rh.hub.authenticator, old)  # the OP's 3 s access token needs refreshing now
    admin = await _token(rh, "alice", ["admin:auth_state"])
    plain = await _token(rh, "bob", ["read:users"])
    url = f"{rh.url}/hub/api/users/bob/auth-state"
    async with httpx.AsyncClient() as client:
        refused = await client.get(url, headers={"Authorization": f"token {plain}"})
        assert refused.status_code in (403, 404)
        answer = await client.get(url, headers={"Authorization": f"token {admin}"})
        assert answer.status_code == 200
        body = answer.json()
        state = body.get("auth_state", body)
        assert state["access_token"] != old["access_token"] and state["expires_at"] > time.time()
        # the refreshed state was stored (encrypted) for the next reader
        async with rh.hub.db() as session:
            bob = (await session.execute(select(User).where(User.name == "bob"))).scalar_one()
            assert bob.auth_state["access_token"] == state["access_token"]
        # the fresh token works at the provider
        me = await client.get(f"{rh.op.issuer}/me", headers={"Authorization": f"Bearer {state['access_token']}"})
        assert me.status_code == 200 and me.json()["sub"] == "bob"


async def test_auth_state_for_the_users_own_server_and_expired_sessions(running_hub: RunningHub) -> None:
    rh = running_hub
    for who in ("alice", "bob"):
        async with httpx.AsyncClient() as browser:
            await browse(browser, f"{rh.url}/hub/oauth_login", login=who)
    bobs_server = await _token(rh, "bob", [], kind="server")
    alices_server = await _token(rh, "alice", [], kind="server")
    url = f"{rh.url}/hub/api/users/bob/auth-state"
    async with httpx.AsyncClient() as client:
        mine = await client.get(url, headers={"Authorization": f"token {bobs_server}"})
        assert mine.status_code == 200 and mine.json()["access_token"]
        theirs = await client.get(url, headers={"Authorization": f"token {alices_server}"})
        assert theirs.status_code == 403
        # the provider no longer honours the refresh token: the server is told to have the user log in again
        async with rh.hub.db() as session:
            bob = (await session.execute(select(User).where(User.name == "bob"))).scalar_one()
            bob.auth_state = {**bob.auth_state, "expires_at": time.time() - 1, "refresh_token": "revoked"}
            await session.commit()
        gone = await client.get(url, headers={"Authorization": f"token {bobs_server}"})
        assert gone.status_code == 401 and "log in to the hub again" in gone.json()["message"]
