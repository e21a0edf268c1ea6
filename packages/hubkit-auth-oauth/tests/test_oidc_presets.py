"""Google, GitLab, Entra ID and Auth0 presets against a local OIDC server answering with each provider's
documented claim shapes; plus ID-token checks that need a misbehaving provider."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hubkit.errors import AuthFailed
from hubkit.interfaces import AuthResult, UserInfo
from hubkit.plugins.registry import HubInfo
from hubkit_oauth import OIDCAuthenticator, OIDCConfig
from hubkit_oauth.presets.auth0 import Auth0Authenticator, Auth0Config
from hubkit_oauth.presets.azuread import AzureADAuthenticator, AzureADConfig
from hubkit_oauth.presets.gitlab import GitLabAuthenticator, GitLabConfig
from hubkit_oauth.presets.google import GoogleAuthenticator, GoogleConfig
from joserfc import jwt
from joserfc.jwk import OctKey
from oauth_fakes import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, FakeProvider, login

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]
CLIENT = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

GOOGLE_CLAIMS = {"azp": CLIENT_ID, "sub": "110169484474386276334", "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
                 "hd": "example.com", "email": "jsmith@example.com", "email_verified": "true",
                 "name": "J Smith", "given_name": "J", "family_name": "Smith"}


async def test_google_hosted_domain(provider: FakeProvider, hub: HubInfo) -> None:
    provider.id_claims = GOOGLE_CLAIMS
    auth = GoogleAuthenticator(GoogleConfig(**CLIENT, issuer=provider.issuer, hosted_domain=["Example.com"],
                                            allow_all=True), hub)
    done = await login(auth)
    assert done.result.name == "jsmith@example.com"
    authorize = next(p for kind, p in provider.requests if kind == "authorize")
    assert authorize["hd"] == "example.com" and authorize["access_type"] == "offline"
    assert authorize["nonce"] and authorize["code_challenge_method"] == "S256"
    # a consumer account has no hd claim
    provider.id_claims = {k: v for k, v in GOOGLE_CLAIMS.items() if k != "hd"} | {"email": "someone@gmail.com"}
    with pytest.raises(AuthFailed, match=r"Google account of example\.com.*someone@gmail\.com"):
        await login(auth)
    provider.id_claims = GOOGLE_CLAIMS | {"hd": "other.org", "email": "x@other.org"}
    with pytest.raises(AuthFailed, match="is not one"):
        await login(auth)
    await auth.aclose()


async def test_gitlab_groups_from_userinfo(provider: FakeProvider, hub: HubInfo) -> None:
    provider.id_claims = {"sub": "1", "sub_legacy": "2f0e9b2e", "auth_time": int(time.time()),
                          "groups_direct": ["gitlab-org"]}
    provider.userinfo = {"sub": "1", "sub_legacy": "2f0e9b2e", "name": "Administrator", "nickname": "root",
                         "preferred_username": "root", "email": "admin@example.com", "email_verified": True,
                         "website": "", "profile": "https://gitlab.example.com/root",
                         "picture": "https://gitlab.example.com/avatar.png",
                         "groups": ["gitlab-org", "gitlab-org/data-science", "toolbox"]}
    auth = GitLabAuthenticator(GitLabConfig(**CLIENT, issuer=provider.issuer,
                                            allowed_groups=["gitlab-org/data-science"],
                                            admin_groups=["toolbox"]), hub)
    result = (await login(auth)).result
    assert result.name == "root"
    # slashes are not allowed in hubkit group names: a/b becomes a:b
    assert result.groups == ("gitlab-org", "gitlab-org:data-science", "toolbox")
    assert result.admin is True
    provider.userinfo = {**provider.userinfo, "sub": "999"}
    with pytest.raises(AuthFailed, match="different account"):
        await login(auth)
    await auth.aclose()


async def test_entra_multi_tenant_issuer_follows_tid(provider: FakeProvider, hub: HubInfo) -> None:
    tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
    provider.issuer_path = "/organizations/v2.0"
    provider.discovered_issuer = f"{provider.base}/{{tenantid}}/v2.0"
    claims = {"ver": "2.0", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": tenant,
              "oid": "00000000-0000-0000-66f3-3332eca7ea81", "name": "Abe Lincoln",
              "preferred_username": "AbeLi@microsoft.com", "groups": ["a1b2-staff-guid"]}
    provider.id_claims = claims | {"iss": f"{provider.base}/{tenant}/v2.0"}
    auth = AzureADAuthenticator(AzureADConfig(**CLIENT, tenant_id="organizations", authority=provider.base,
                                              allowed_groups=["a1b2-staff-guid"],
                                              group_map={"a1b2-staff-guid": "staff"}), hub)
    assert auth.config.issuer == provider.issuer
    result = (await login(auth)).result
    assert result.name == "abeli@microsoft.com" and result.groups == ("staff",)
    # a token whose iss does not match its own tenant is refused
    provider.id_claims = claims | {"iss": f"{provider.base}/another-tenant/v2.0"}
    with pytest.raises(AuthFailed, match="not the configured issuer"):
        await login(auth)
    await auth.aclose()


async def test_auth0_namespaced_groups_and_logout(provider: FakeProvider, hub: HubInfo) -> None:
    provider.end_session = False
    provider.id_claims = {"sub": "auth0|5f7c8ec7c33c6c004bbafe82", "nickname": "ada", "name": "Ada",
                          "email": "ada@uni.example", "email_verified": True,
                          "https://hub.example/groups": ["physics", "hub-admin"]}
    auth = Auth0Authenticator(Auth0Config(**CLIENT, domain="tenant.eu.auth0.com", issuer=provider.issuer,
                                          groups_claim="https://hub.example/groups",
                                          allowed_email_domains=["uni.example"], admin_groups=["hub-admin"]), hub)
    result = (await login(auth)).result
    assert result.name == "ada@uni.example" and result.groups == ("hub-admin", "physics") and result.admin
    url = auth.logout_url(UserInfo(name="ada@uni.example"), result.auth_state)
    assert url is not None and url.startswith(f"{provider.issuer}/v2/logout?")
    assert parse_qs(urlsplit(url).query)["returnTo"] == ["http://127.0.0.1:8000/hub/login"]
    assert Auth0Config(client_id="c", domain="tenant.eu.auth0.com").issuer == "https://tenant.eu.auth0.com/"
    await auth.aclose()


def _generic(provider: FakeProvider, hub: HubInfo, **options: Any) -> OIDCAuthenticator:
    return OIDCAuthenticator(OIDCConfig(**CLIENT, issuer=provider.issuer, allow_all=True, **options), hub)


async def test_rejects_unsigned_hmac_and_malformed_tokens(provider: FakeProvider, hub: HubInfo) -> None:
    auth = _generic(provider, hub)
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": CLIENT_ID, "sub": "eve", "iat": now, "exp": now + 60}
    provider.id_token_override = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET * 4))
    with pytest.raises(AuthFailed, match="algorithm 'HS256'"):
        await login(auth)
    provider.id_token_override = "not.a.jwt"
    with pytest.raises(AuthFailed, match="not a well-formed"):
        await login(auth)
    await auth.aclose()


async def test_claim_checks(provider: FakeProvider, hub: HubInfo) -> None:
    auth = _generic(provider, hub, clock_skew=0)
    provider.id_claims = {"sub": "eve", "preferred_username": "eve", "iat": int(time.time()) + 600}
    with pytest.raises(AuthFailed, match="issued in the future"):
        await login(auth)
    provider.id_claims = {"sub": "eve", "preferred_username": "eve", "aud": [CLIENT_ID, "api"], "azp": "api"}
    with pytest.raises(AuthFailed, match="authorized party"):
        await login(auth)
    provider.id_claims = {"sub": "eve"}
    with pytest.raises(AuthFailed, match="'preferred_username' claim"):
        await login(auth)
    provider.id_claims = {"sub": "eve", "preferred_username": "eve", "iss": "https://evil.example"}
    with pytest.raises(AuthFailed, match="not the configured issuer"):
        await login(auth)
    await auth.aclose()


async def test_discovery_issuer_must_match(provider: FakeProvider, hub: HubInfo) -> None:
    provider.discovered_issuer = "https://someone-else.example"
    auth = _generic(provider, hub)
    with pytest.raises(AuthFailed, match="discovery document names the issuer"):
        await auth.start_login("/", REDIRECT_URI)
    await auth.aclose()


async def test_refresh_keeps_identity_and_drops_revoked_access(provider: FakeProvider, hub: HubInfo) -> None:
    auth = OIDCAuthenticator(OIDCConfig(**CLIENT, issuer=provider.issuer, allowed_groups=["lab"]), hub)
    user = UserInfo(name="kim")

    async def due_state() -> dict[str, Any]:
        provider.id_claims = {"sub": "u1", "preferred_username": "kim", "groups": ["lab"]}
        state = dict((await login(auth)).result.auth_state or {})
        return {**state, "expires_at": time.time() + 10}

    soon = await due_state()
    provider.id_claims = {"sub": "u1", "preferred_username": "kim", "groups": []}  # removed from the group
    assert await auth.refresh_user(user, soon) is False
    soon = await due_state()
    provider.id_claims = {"sub": "u2", "preferred_username": "kim", "groups": ["lab"]}  # another account
    assert await auth.refresh_user(user, soon) is False
    soon = await due_state()
    provider.id_claims = {"sub": "u1", "preferred_username": "kim", "groups": ["lab", "new"]}
    refreshed = await auth.refresh_user(user, soon)
    assert not isinstance(refreshed, bool) and refreshed.groups == ("lab", "new")
    await auth.aclose()


async def test_concurrent_refreshes_share_one_rotation(provider: FakeProvider, hub: HubInfo) -> None:
    provider.id_claims = {"sub": "u1", "preferred_username": "kim"}
    auth = _generic(provider, hub)
    state = dict((await login(auth)).result.auth_state or {})
    soon = {**state, "expires_at": time.time() + 10}
    first, second = await asyncio.gather(auth.refresh_user(UserInfo(name="kim"), soon),
                                         auth.refresh_user(UserInfo(name="kim"), soon))
    assert isinstance(first, AuthResult) and first == second
    assert sum(1 for kind, p in provider.requests if kind == "token" and p["grant_type"] == "refresh_token") == 1
    # the old refresh token is spent at the provider: without the shared result this would be "log in again"
    auth2 = _generic(provider, hub)
    assert await auth2.refresh_user(UserInfo(name="kim"), soon) is False
    await auth.aclose()
    await auth2.aclose()


async def test_a_shared_refresh_is_not_handed_out_once_it_is_due_itself(provider: FakeProvider,
                                                                        hub: HubInfo) -> None:
    """A caller still holding the spent refresh token gets the shared result only while that result is fresh;
    later the refresh continues from the newer (rotated) refresh token instead of handing out a token about
    to expire, or asking the person to log in again."""
    provider.id_claims = {"sub": "u1", "preferred_username": "kim"}
    provider.expires_in = 4  # the margin is capped at half of it: 2 s
    auth = _generic(provider, hub)
    old = dict((await login(auth)).result.auth_state or {})
    assert auth.refresh_margin_for(old) == 2
    await asyncio.sleep(old["expires_at"] - 2 - time.time() + 0.1)  # due now
    user = UserInfo(name="kim")
    first = await auth.refresh_user(user, old)
    assert isinstance(first, AuthResult)
    assert await auth.refresh_user(user, old) == first  # moments later: shared, the old token is spent
    new = first.auth_state or {}
    await asyncio.sleep(new["expires_at"] - 2 - time.time() + 0.1)  # the shared result is due as well
    later = await auth.refresh_user(user, old)
    assert isinstance(later, AuthResult) and later != first
    assert (later.auth_state or {})["expires_at"] - time.time() > 2
    refreshes = [p["refresh_token"] for kind, p in provider.requests
                 if kind == "token" and p["grant_type"] == "refresh_token"]
    assert refreshes == [old["refresh_token"], new["refresh_token"]]
    await auth.aclose()


async def test_callback_from_another_issuer_is_refused(provider: FakeProvider, hub: HubInfo) -> None:
    auth = _generic(provider, hub)
    start = await auth.start_login("/", REDIRECT_URI)
    state = parse_qs(urlsplit(start.url).query)["state"][0]
    params = {"code": "c", "state": state, "iss": "https://attacker.example"}
    with pytest.raises(AuthFailed, match="different provider"):
        await auth.complete_login(params, start.state, REDIRECT_URI)
    await auth.aclose()


async def test_unexpected_provider_answers_are_not_a_crash(provider: FakeProvider, hub: HubInfo) -> None:
    class Fragile(OIDCAuthenticator):
        def identity_from_claims(self, claims: dict[str, Any]) -> Any:
            raise TypeError("surprising shape")

    provider.id_claims = {"sub": "u1", "preferred_username": "kim"}
    auth = Fragile(OIDCConfig(**CLIENT, issuer=provider.issuer, allow_all=True), hub)
    with pytest.raises(AuthFailed, match="answered in an unexpected way"):
        await login(auth)
    await auth.aclose()
