"""Short-lived access tokens (8 s here, 20 s at some providers): what the hub hands out must never expire within
the refresh margin, even while refreshes are shared between concurrent callers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from hubkit.auth.tokens import issue_token
from hubkit.interfaces import AuthResult, UserInfo
from hubkit.storage.orm import User
from oauth_helpers import RealOP, StartHub, browse, full_login, make_oidc
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def works_at_provider(op: RealOP, access_token: str) -> bool:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{op.issuer}/me", headers={"Authorization": f"Bearer {access_token}"})
    return answer.status_code == 200


async def test_auth_state_api_never_hands_out_a_token_inside_the_margin(
    start_hub: StartHub, short_token_op: RealOP
) -> None:
    margin = 3.0
    rh = await start_hub(short_token_op, refresh_margin=margin)
    async with httpx.AsyncClient() as browser:
        await browse(browser, f"{rh.url}/hub/oauth_login", login="bob")
    async with rh.hub.db() as session:
        bob = (await session.execute(select(User).where(User.name == "bob"))).scalar_one()
        server_token, _ = await issue_token(session, user_id=bob.id, scopes=[], kind="server", note="test")
        await session.commit()
    url = f"{rh.url}/hub/api/users/bob/auth-state"
    seen: list[str] = []
    deadline = time.monotonic() + 2.5 * 8  # two and a half token lifetimes: several refreshes and reuses
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            asked_at = time.time()
            answer = await client.get(url, headers={"Authorization": f"token {server_token}"})
            assert answer.status_code == 200, answer.text
            state = answer.json()
            # decided after asked_at, so a correct hub leaves more than the margin from then on
            left = state["expires_at"] - asked_at
            assert left > margin, f"handed out a token with {left:.1f} s left (margin {margin} s)"
            if state["access_token"] not in seen:
                seen.append(state["access_token"])
                assert await works_at_provider(rh.op, state["access_token"])
            await asyncio.sleep(0.5)
    assert len(seen) >= 3  # the tokens really were refreshed along the way


async def test_margin_is_capped_at_half_a_short_lifetime(short_token_op: RealOP, hub_port: int,
                                                        redirect_uri: str) -> None:
    """With the default 60 s margin and 8 s tokens every token would be due on arrival: a refresh per call,
    none ever shareable. The margin is capped at half the lifetime (4 s) instead."""
    auth = make_oidc(short_token_op, hub_port)
    assert auth.config.refresh_margin == 60
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
    state: dict[str, Any] = dict(done.result.auth_state or {})
    assert state["lifetime"] == 8 and auth.refresh_margin_for(state) == 4
    user = UserInfo(name="alice")
    tokens = {state["access_token"]}
    calls = 0
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        asked_at = time.time()
        outcome = await auth.refresh_user(user, state)
        calls += 1
        assert outcome is not False
        if isinstance(outcome, AuthResult):
            state = dict(outcome.auth_state or {})  # what the hub stores
            tokens.add(state["access_token"])
        assert state["expires_at"] - asked_at > 4
        await asyncio.sleep(0.25)
    assert calls >= 30
    assert 3 <= len(tokens) <= 5  # one refresh about every 4 s, not one per call
    await auth.aclose()

