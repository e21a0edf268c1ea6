"""The OIDC authenticator against a real OpenID Connect provider process (panva's oidc-provider).

The hub's web endpoints are not involved here: the test plays the browser (httpx with a cookie jar) between
``start_login`` and ``complete_login``, exactly as /hub/oauth_login and /hub/oauth_callback would.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hubkit.errors import AuthFailed, ConfigError
from hubkit.interfaces import AuthResult, UserInfo
from hubkit_oauth import OIDCAuthenticator, OIDCConfig
from hubkit_oauth.id_token import verify_id_token
from hubkit_oauth.login_state import LoginState
from joserfc import jwt
from joserfc.jwk import RSAKey
from oauth_helpers import (
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    RealOP,
    full_login,
    hub_info,
    make_oidc,
    new_key,
    refusing_port,
    sign_in_at_op,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_login_maps_groups_admin_and_keeps_tokens(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port)
    await auth.startup()
    async with httpx.AsyncClient() as browser:
        done, params, _ = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri,
                                           next_url="/user/alice/lab")
    assert "access_token" not in params and "id_token" not in params  # tokens never travel in a URL
    result = done.result
    assert done.next_url == "/user/alice/lab"
    assert result.name == "alice"
    assert result.admin is True
    assert result.groups == ("hub-admins", "staff")
    state = result.auth_state or {}
    assert state["provider"] == "oidc" and state["access_token"] and state["refresh_token"]
    assert state["expires_at"] > time.time()
    assert state["user"]["email"] == "alice@example.org"
    await auth.aclose()


async def test_non_admin_group_member_and_group_mapping(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, group_map={"students": "class-2026"}, group_prefix="oidc-")
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="bob", redirect_uri=redirect_uri)
    assert done.result.name == "bob"
    assert done.result.admin is False
    assert done.result.groups == ("class-2026",)
    await auth.aclose()


async def test_userinfo_claims_are_merged(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, use_userinfo=True, username_claim="email", lowercase_username=False)
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="bob", redirect_uri=redirect_uri)
    assert done.result.name == "bob@example.org"
    await auth.aclose()


async def test_denied_by_allow_list_says_why(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, allowed_email_domains=["example.org"])
    async with httpx.AsyncClient() as browser:
        with pytest.raises(AuthFailed, match=r"not allowed on this hub.*none of the allowed groups"):
            await full_login(auth, browser, login="mallory", redirect_uri=redirect_uri)
    await auth.aclose()


async def test_blocked_user_is_refused_even_in_an_allowed_group(real_op: RealOP, hub_port: int,
                                                               redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, blocked_users=["bob"])
    async with httpx.AsyncClient() as browser:
        with pytest.raises(AuthFailed, match="'bob' is blocked"):
            await full_login(auth, browser, login="bob", redirect_uri=redirect_uri)
    await auth.aclose()


async def test_refresh_after_expiry_gives_new_tokens(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, refresh_margin=0)
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
    state = dict(done.result.auth_state or {})
    user = UserInfo(name="alice")
    assert await auth.refresh_user(user, state) is True  # still fresh
    await asyncio.sleep(max(0.0, state["expires_at"] - time.time()) + 0.5)
    refreshed = await auth.refresh_user(user, state)
    assert isinstance(refreshed, AuthResult)
    new_state = refreshed.auth_state or {}
    assert new_state["access_token"] != state["access_token"]
    assert new_state["expires_at"] > time.time()
    assert refreshed.groups == ("hub-admins", "staff") and refreshed.admin is True
    # the new access token really works at the provider
    async with httpx.AsyncClient() as client:
        info = await client.get(f"{real_op.issuer}/me",
                                headers={"Authorization": f"Bearer {new_state['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == "alice"
    # a refresh token the provider does not know means: log in again
    expired = {**new_state, "expires_at": time.time() - 1, "refresh_token": "not-a-real-refresh-token"}
    assert await auth.refresh_user(user, expired) is False
    # expired and nothing to refresh with
    assert await auth.refresh_user(user, {**expired, "refresh_token": None}) is False
    await auth.aclose()


async def test_logout_ends_the_provider_session(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port)
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
        # while the provider session lives, a new login goes straight back without the form
        again = await auth.start_login("/", redirect_uri)
        hop = await browser.get(again.url)
        while hop.is_redirect and not hop.headers["location"].startswith(redirect_uri):
            hop = await browser.get(hop.headers["location"])
        assert hop.is_redirect and hop.headers["location"].startswith(redirect_uri)

        url = auth.logout_url(UserInfo(name="alice"), done.result.auth_state)
        assert url is not None and url.startswith(f"{real_op.issuer}/session/end")
        query = parse_qs(urlsplit(url).query)
        assert query["client_id"] == ["hubkit"]
        assert query["post_logout_redirect_uri"] == [f"http://127.0.0.1:{hub_port}/hub/login"]
        assert "id_token_hint" not in query  # no token in a URL
        # the provider asks to confirm; submitting its form ends the session and returns to the hub
        back = await sign_in_at_op(browser, url, login="alice", until=f"http://127.0.0.1:{hub_port}/hub/login")
        assert "error" not in back
        # now the provider shows its login form again
        fresh = await auth.start_login("/", redirect_uri)
        page = await browser.get(fresh.url, follow_redirects=True)
        assert page.status_code == 200 and 'name="login"' in page.text
    await auth.aclose()


async def test_tampered_state_is_rejected(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port)
    start = await auth.start_login("/", redirect_uri)
    async with httpx.AsyncClient() as browser:
        params = await sign_in_at_op(browser, start.url, login="alice", until=redirect_uri)
    with pytest.raises(AuthFailed, match="state mismatch"):
        await auth.complete_login({**params, "state": params["state"][:-2] + "xx"}, start.state, redirect_uri)
    with pytest.raises(AuthFailed, match="could not be read"):
        await auth.complete_login(params, start.state[:-6] + "!!", redirect_uri)
    await auth.aclose()


async def test_replayed_code_is_rejected(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port)
    async with httpx.AsyncClient() as browser:
        done, params, state = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
    assert done.result.name == "alice"
    with pytest.raises(AuthFailed, match="already used or has expired"):
        await auth.complete_login(params, state, redirect_uri)
    await auth.aclose()


async def test_wrong_nonce_is_rejected(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port)
    start = await auth.start_login("/", redirect_uri)
    async with httpx.AsyncClient() as browser:
        params = await sign_in_at_op(browser, start.url, login="alice", until=redirect_uri)
    login = LoginState.decode(start.state)
    swapped = LoginState(login.state, "another-login-attempts-nonce", login.verifier, login.next_url,
                         login.issued_at).encode()
    with pytest.raises(AuthFailed, match="nonce mismatch"):
        await auth.complete_login(params, swapped, redirect_uri)
    await auth.aclose()


async def test_wrong_audience_and_expired_id_token(real_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    ours = make_oidc(real_op, hub_port)
    other = make_oidc(real_op, hub_port, client_id=OTHER_CLIENT_ID, client_secret=CLIENT_SECRET + "-other")
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(other, browser, login="alice", redirect_uri=redirect_uri)
    foreign = (done.result.auth_state or {})["id_token"]
    await ours.metadata()
    assert ours._jwks is not None
    with pytest.raises(AuthFailed, match="wrong audience"):
        await verify_id_token(foreign, jwks=ours._jwks, issuer=ours.expected_issuer, client_id="hubkit",
                              nonce=None, algorithms=["RS256"], leeway=0)
    # the same token, checked for its own client once its lifetime has passed
    claims = await verify_id_token(foreign, jwks=ours._jwks, issuer=ours.expected_issuer,
                                   client_id=OTHER_CLIENT_ID, nonce=None, algorithms=["RS256"], leeway=0)
    await asyncio.sleep(max(0.0, claims["exp"] - time.time()) + 1.1)
    with pytest.raises(AuthFailed, match="has expired"):
        await verify_id_token(foreign, jwks=ours._jwks, issuer=ours.expected_issuer, client_id=OTHER_CLIENT_ID,
                              nonce=None, algorithms=["RS256"], leeway=0)
    await ours.aclose()
    await other.aclose()


async def test_token_signed_by_an_unknown_key(real_op: RealOP, hub_port: int) -> None:
    auth = make_oidc(real_op, hub_port)
    await auth.metadata()
    assert auth._jwks is not None
    now = int(time.time())
    claims = {"iss": real_op.issuer, "aud": "hubkit", "sub": "alice", "iat": now, "exp": now + 60, "nonce": "n"}
    rogue = RSAKey.import_key(new_key("rogue-key"))
    token = jwt.encode({"alg": "RS256", "kid": "rogue-key"}, claims, rogue)
    with pytest.raises(AuthFailed, match="unknown key"):
        await verify_id_token(token, jwks=auth._jwks, issuer=auth.expected_issuer, client_id="hubkit",
                              nonce="n", algorithms=["RS256"], leeway=0)
    # a forger reusing the provider's key id still fails on the signature
    impostor = RSAKey.import_key(new_key("key-1"))
    token = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, impostor)
    with pytest.raises(AuthFailed, match="signature is not valid"):
        await verify_id_token(token, jwks=auth._jwks, issuer=auth.expected_issuer, client_id="hubkit",
                              nonce="n", algorithms=["RS256"], leeway=0)
    await auth.aclose()


async def test_key_rotation_refetches_jwks(own_op: RealOP, hub_port: int, redirect_uri: str) -> None:
    auth = make_oidc(own_op, hub_port)
    slow = make_oidc(own_op, hub_port, jwks_refetch_interval=3600)
    async with httpx.AsyncClient() as browser:
        await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
        await full_login(slow, browser, login="alice", redirect_uri=redirect_uri)
    old = own_op.keys[0]
    own_op.restart([new_key("key-2"), old])  # the provider now signs with key-2 and still publishes key-1
    async with httpx.AsyncClient() as browser:
        done, _, _ = await full_login(auth, browser, login="alice", redirect_uri=redirect_uri)
        assert done.result.name == "alice"
        # with refetching rate-limited, the unknown key is refused rather than hammering the provider
        with pytest.raises(AuthFailed, match="unknown key"):
            await full_login(slow, browser, login="alice", redirect_uri=redirect_uri)
    await auth.aclose()
    await slow.aclose()


async def test_provider_error_in_callback_and_expired_attempt(real_op: RealOP, hub_port: int,
                                                             redirect_uri: str) -> None:
    auth = make_oidc(real_op, hub_port, extra_authorize_params={"prompt": "none"})
    start = await auth.start_login("/", redirect_uri)
    async with httpx.AsyncClient() as browser:  # no provider session + prompt=none: the OP answers an error
        params = await sign_in_at_op(browser, start.url, login="alice", until=redirect_uri)
    assert params["error"] == "login_required"
    with pytest.raises(AuthFailed, match="needs you to sign in"):
        await auth.complete_login(params, start.state, redirect_uri)
    login = LoginState.decode(start.state)
    old = LoginState(login.state, login.nonce, login.verifier, login.next_url, time.time() - 3600).encode()
    with pytest.raises(AuthFailed, match="expired"):
        await auth.complete_login({"state": login.state, "code": "x"}, old, redirect_uri)
    await auth.aclose()


async def test_unreachable_provider_and_config_guard(hub_port: int, redirect_uri: str) -> None:

    held = refusing_port()  # bound, never listening: the provider is down, and no one else can be it
    dead = f"http://127.0.0.1:{held.getsockname()[1]}"
    auth = OIDCAuthenticator(OIDCConfig(issuer=dead, client_id="c", allow_all=True, http_timeout=2),
                             hub_info(hub_port))
    await auth.startup()  # a provider down at hub start must not stop the hub
    with pytest.raises(AuthFailed, match="cannot be reached"):
        await auth.start_login("/", redirect_uri)
    assert auth.logout_url(UserInfo(name="a"), None) is None
    await auth.aclose()
    closed = OIDCAuthenticator(OIDCConfig(issuer=dead, client_id="c"), hub_info(hub_port))
    with pytest.raises(ConfigError, match="no one could log in"):
        await closed.startup()
    await closed.aclose()
    held.close()


async def test_callback_without_iss_is_refused_when_the_provider_promises_one(
    real_op: RealOP, hub_port: int, redirect_uri: str
) -> None:
    """RFC 9207: the OP advertises ``authorization_response_iss_parameter_supported``, so an answer without
    ``iss`` did not come from it (a mix-up attack relays another provider's code without one)."""
    auth = make_oidc(real_op, hub_port)
    assert (await auth.metadata()).iss_parameter_supported
    start = await auth.start_login("/", redirect_uri)
    async with httpx.AsyncClient() as browser:
        params = await sign_in_at_op(browser, start.url, login="alice", until=redirect_uri)
    assert params["iss"] == real_op.issuer
    without = {k: v for k, v in params.items() if k != "iss"}
    with pytest.raises(AuthFailed, match="does not say which provider sent it"):
        await auth.complete_login(without, start.state, redirect_uri)
    with pytest.raises(AuthFailed, match="different provider"):
        await auth.complete_login({**params, "iss": "https://attacker.example"}, start.state, redirect_uri)
    # refused before the code was spent: the provider's own answer still logs in
    done = await auth.complete_login(params, start.state, redirect_uri)
    assert done.result.name == "alice"
    await auth.aclose()
