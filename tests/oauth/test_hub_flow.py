"""The whole redirect login through the hub's web app (/hub/oauth_login, /hub/oauth_callback, /hub/logout)
against the real OpenID Connect provider, with an HTTP client following redirects as a browser would."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from hubkit.auth.signing import sign, unsign
from hubkit.interfaces import AuthResult, UserInfo
from hubkit.storage.orm import User
from hubkit_oauth.login_state import LoginState
from oauth_helpers import ACCOUNTS, CLIENT_SECRET, RunningHub, browse, sign_in_at_op, wait_until_due
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def stored_user(rh: RunningHub, name: str) -> User | None:
    async with rh.hub.db() as session:
        query = select(User).where(User.name == name).options(selectinload(User.groups))
        return (await session.execute(query)).scalar_one_or_none()


async def set_account(rh: RunningHub, login: str, claims: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{rh.op.issuer}/__test/accounts/{login}", json=claims)
    assert answer.status_code == 204


async def test_login_groups_admin_auth_state_and_logout(running_hub: RunningHub) -> None:
    rh = running_hub
    async with httpx.AsyncClient() as browser:
        page = await browser.get(f"{rh.url}/hub/login")
        assert 'id="login-button"' in page.text and "/hub/oauth_login" in page.text
        final = await browse(browser, f"{rh.url}/hub/oauth_login?next=/hub/token", login="alice")
        assert final.status_code == 200 and str(final.url) == f"{rh.url}/hub/token"
        assert not any(k in str(final.url) for k in ("code=", "token=", "state="))
        user = await stored_user(rh, "alice")
        assert user is not None and user.admin is True
        assert sorted(g.name for g in user.groups) == ["hub-admins", "staff"]
        state = user.auth_state
        assert state["access_token"] and state["refresh_token"] and state["provider"] == "oidc"
        async with rh.hub.db() as session:  # encrypted at rest: the token is not in the column's bytes
            raw = (await session.execute(text("SELECT auth_state FROM users WHERE name = 'alice'"))).scalar()
        assert state["access_token"] not in str(raw)

        # logout: hub session cleared, provider session ended (RP-initiated), back on the hub's login page
        final = await browse(browser, f"{rh.url}/hub/logout", login="alice")
        assert str(final.url) == f"{rh.url}/hub/login" and final.status_code == 200
        home = await browser.get(f"{rh.url}/hub/home")
        assert home.status_code in (302, 303) and "/hub/login" in home.headers["location"]
        # the provider now asks for credentials again instead of answering at once
        again = await browse(browser, f"{rh.url}/hub/oauth_login", login="alice",
                             until=f"{rh.op.issuer}/interaction/")
        assert again.is_redirect and "/interaction/" in again.headers["location"]


async def test_groups_and_admin_follow_the_provider_at_each_login(running_hub: RunningHub) -> None:
    rh = running_hub
    original = ACCOUNTS["alice"]
    try:
        async with httpx.AsyncClient() as browser:
            await browse(browser, f"{rh.url}/hub/oauth_login", login="alice")
        user = await stored_user(rh, "alice")
        assert user is not None and user.admin is True
        await set_account(rh, "alice", {**original, "groups": ["staff", "physics"]})
        async with httpx.AsyncClient() as browser:
            await browse(browser, f"{rh.url}/hub/oauth_login", login="alice")
        user = await stored_user(rh, "alice")
        assert user is not None and user.admin is False  # left the admin group: admin revoked
        assert sorted(g.name for g in user.groups) == ["physics", "staff"]
    finally:
        await set_account(rh, "alice", original)


async def test_refresh_of_stored_auth_state(running_hub: RunningHub) -> None:
    """What the engine does before a spawn: refresh_user on the stored state once the token is due."""
    rh = running_hub
    async with httpx.AsyncClient() as browser:
        await browse(browser, f"{rh.url}/hub/oauth_login", login="bob")
    user = await stored_user(rh, "bob")
    assert user is not None and user.admin is False and [g.name for g in user.groups] == ["students"]
    state = user.auth_state
    await wait_until_due(rh.hub.authenticator, state)  # the OP's 3 s access token is now inside the margin
    result = await rh.hub.authenticator.refresh_user(UserInfo(name="bob"), state)
    assert isinstance(result, AuthResult)
    assert result.auth_state["access_token"] != state["access_token"]
    assert result.auth_state["expires_at"] > time.time()


async def test_error_pages_a_person_can_act_on(running_hub: RunningHub) -> None:
    rh = running_hub
    async with httpx.AsyncClient() as browser:
        # no login attempt in this browser
        page = await browser.get(f"{rh.url}/hub/oauth_callback?code=abc&state=xyz")
        assert page.status_code == 400 and "try again" in page.text
        # an attempt exists, but the answer carries someone else's state
        start = await browser.get(f"{rh.url}/hub/oauth_login")
        assert start.status_code in (302, 303) and "hubkit-oauth-state" in start.headers["set-cookie"]
        assert "httponly" in start.headers["set-cookie"].lower()
        page = await browser.get(f"{rh.url}/hub/oauth_callback?code=abc&state=not-the-one")
        assert page.status_code == 403 and "state mismatch" in page.text
        # the provider reports an error
        await browser.get(f"{rh.url}/hub/oauth_login")
        page = await browser.get(f"{rh.url}/hub/oauth_callback?error=access_denied&error_description=nope")
        assert page.status_code == 403 and "You declined the login" in page.text
    async with httpx.AsyncClient() as browser:
        # denied by the allow-list
        page = await browse(browser, f"{rh.url}/hub/oauth_login", login="mallory")
        assert page.status_code == 403
        assert "not allowed on this hub" in page.text and "none of the allowed groups" in page.text
    assert await stored_user(rh, "mallory") is None


async def test_no_token_in_any_log_record(running_hub: RunningHub, caplog: pytest.LogCaptureFixture) -> None:
    rh = running_hub
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as browser:
        await browse(browser, f"{rh.url}/hub/oauth_login", login="alice")
    user = await stored_user(rh, "alice")
    assert user is not None
    state = user.auth_state
    due = {**state, "expires_at": time.time()}
    refreshed = await rh.hub.authenticator.refresh_user(UserInfo(name="alice"), due)
    assert isinstance(refreshed, AuthResult)
    secrets = [state["access_token"], state["refresh_token"], state["id_token"],
               refreshed.auth_state["access_token"], refreshed.auth_state["refresh_token"], CLIENT_SECRET]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "alice" in logged  # the records were captured
    for secret in secrets:
        assert secret not in logged


async def test_each_refused_login_leaves_a_log_line_with_its_reason(
    running_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """As for form logins, an operator sees every refused OAuth login and why, and never a code, a state
    value or a token."""
    rh = running_hub
    caplog.set_level(logging.INFO)
    callback = f"{rh.url}/hub/oauth_callback"
    secrets: list[str] = []

    async def answer(browser: httpx.AsyncClient, login: str) -> tuple[dict[str, str], str]:
        """The OP's answer to a login the hub started in ``browser``, and that browser's state cookie."""
        params = await sign_in_at_op(browser, f"{rh.url}/hub/oauth_login", login=login, until=callback)
        cookie = browser.cookies["hubkit-oauth-state"]
        secrets.extend([params["code"], params["state"], cookie])
        return params, cookie

    async def refused(reason: str, params: dict[str, str], cookie: str | None, status: int = 403) -> None:
        mark = len(caplog.records)
        async with httpx.AsyncClient() as other:
            headers = {"Cookie": f"hubkit-oauth-state={cookie}"} if cookie else {}
            page = await other.get(callback, params=params, headers=headers)
        assert page.status_code == status, page.text
        lines = [r.getMessage() for r in caplog.records[mark:] if "refused" in r.getMessage()]
        assert len(lines) == 1 and reason in lines[0], (reason, lines)

    async with httpx.AsyncClient() as browser:
        params, cookie = await answer(browser, "alice")
        await refused("no login attempt", params, None, status=400)  # another browser got the answer
        await refused("state mismatch", {**params, "state": "not-the-one"}, cookie)
        without_iss = {k: v for k, v in params.items() if k != "iss"}
        await refused("no iss parameter", without_iss, cookie)
        await refused("is not the issuer", {**params, "iss": "https://attacker.example"}, cookie)
        login = LoginState.decode(unsign(rh.hub.cookie_secret, "hubkit-oauth-state", cookie, max_age=600) or "")
        other_nonce = LoginState(login.state, "someone-elses-nonce", login.verifier, login.next_url,
                                 login.issued_at).encode()
        forged = sign(rh.hub.cookie_secret, "hubkit-oauth-state", other_nonce)
        await refused("nonce mismatch", params, forged)  # spends the code, as a real attacker's try would
        await refused("refused: invalid_grant", params, cookie)  # the same code again: a replay
    async with httpx.AsyncClient() as browser:
        params, cookie = await answer(browser, "mallory")
        await refused("policy: 'mallory' is not allowed: it is in none of the allowed groups", params, cookie)
    async with httpx.AsyncClient() as browser:  # a login that works, for its tokens
        params, cookie = await answer(browser, "bob")
        assert (await browser.get(callback, params=params)).status_code in (302, 303)
    user = await stored_user(rh, "bob")
    assert user is not None
    secrets += [user.auth_state[k] for k in ("access_token", "refresh_token", "id_token")]
    # the hub's records (the test's own HTTP client logs the URLs it fetches, as the hub's CLI keeps it from doing)
    hub_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("hubkit") for r in hub_records)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in hub_records)
    for secret in secrets:
        assert secret not in logged
