"""GitHub preset against a local server answering with GitHub's documented shapes (user, emails, orgs, teams)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hubkit.errors import AuthFailed
from hubkit.interfaces import AuthResult, UserInfo
from hubkit.plugins.registry import HubInfo
from hubkit_oauth.presets.github import GitHubAuthenticator, GitHubConfig
from oauth_fakes import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, FakeProvider, login

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

USER = {"login": "Octocat", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "type": "User",
        "site_admin": False, "name": "The Octocat", "company": "@github", "email": "octocat@github.com",
        "avatar_url": "https://avatars.example/u/583231", "html_url": "https://github.com/octocat"}
EMAILS = [{"email": "octo@old.example", "verified": False, "primary": False, "visibility": None},
          {"email": "octocat@github.com", "verified": True, "primary": True, "visibility": "public"}]
ORGS = [{"login": "github", "id": 1, "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
         "url": "https://api.github.com/orgs/github", "description": "A great organization"},
        {"login": "jupyterhub", "id": 17927519, "url": "https://api.github.com/orgs/jupyterhub",
         "description": None}]
TEAMS = [{"id": 1, "node_id": "MDQ6VGVhbTE=", "name": "Justice League", "slug": "justice-league",
          "description": "A great team.", "privacy": "closed", "permission": "admin", "parent": None,
          "members_count": 3, "repos_count": 10, "organization": ORGS[0]}]


def github(provider: FakeProvider, hub: HubInfo, **options: Any) -> GitHubAuthenticator:
    base: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                            "github_url": provider.base, "api_url": f"{provider.base}/api"}
    return GitHubAuthenticator(GitHubConfig(**{**base, **options}), hub)


def answers(provider: FakeProvider, **over: Any) -> None:
    provider.github = {"/user": USER, "/user/emails": EMAILS, "/user/orgs": ORGS, "/user/teams": TEAMS, **over}


async def test_orgs_and_teams_become_groups_and_allow_rules(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider)
    provider.expires_in = None  # classic OAuth app: the token does not expire
    auth = github(provider, hub, allowed_organizations=["github:justice-league"], admin_organizations=["jupyterhub"])
    await auth.startup()
    done = await login(auth)
    result = done.result
    assert result.name == "octocat"  # GitHub logins are case-blind: lower-cased
    assert result.groups == ("github", "github:justice-league", "jupyterhub")
    assert result.admin is True
    assert result.user_info == {"provider": "github", "email": "octocat@github.com"}
    state = result.auth_state or {}
    assert state["access_token"].startswith("gho_") and "expires_at" not in state
    assert await auth.refresh_user(UserInfo(name="octocat"), state) is True  # non-expiring token
    # the authorization request asked for org access and used PKCE
    authorize = next(p for kind, p in provider.requests if kind == "authorize")
    assert authorize["scope"] == "read:user user:email read:org"
    assert authorize["code_challenge_method"] == "S256"
    await auth.aclose()


async def test_not_in_allowed_org_is_denied(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider, **{"/user/teams": []})
    auth = github(provider, hub, allowed_organizations=["github:justice-league", "numfocus"])
    with pytest.raises(AuthFailed, match="none of the allowed groups"):
        await login(auth)
    await auth.aclose()


async def test_group_mapping_applies_to_github_groups(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider)
    auth = github(provider, hub, allow_all=True, only_mapped_groups=True,
                  group_map={"github:justice-league": "league"})
    assert (await login(auth)).result.groups == ("league",)
    await auth.aclose()


async def test_email_domain_needs_a_verified_address(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider)
    auth = github(provider, hub, allowed_email_domains=["github.com"])
    assert (await login(auth)).result.name == "octocat"
    # the only address in the domain is unverified
    answers(provider, **{"/user/emails": [{**EMAILS[1], "verified": False}]})
    with pytest.raises(AuthFailed, match="not verified"):
        await login(auth)
    # without the user:email scope GitHub refuses /user/emails: the public profile address is no proof
    answers(provider, **{"/user/emails": 403})
    with pytest.raises(AuthFailed, match="not verified with the login provider"):
        await login(auth)
    await auth.aclose()


async def test_membership_lists_are_paginated(provider: FakeProvider, hub: HubInfo) -> None:
    many = [{"login": f"org{i:03d}", "id": i} for i in range(150)]
    answers(provider, **{"/user/orgs": many, "/user/teams": 403})  # no read:org on teams: simply none
    auth = github(provider, hub, allowed_organizations=["org149"])
    result = (await login(auth)).result
    assert result.groups is not None and len(result.groups) == 150 and "org149" in result.groups
    pages = [p["page"] for kind, p in provider.requests if kind == "github_api" and p["path"] == "/user/orgs"]
    assert pages == ["1", "2"]
    await auth.aclose()


async def test_expiring_github_app_token_is_refreshed(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider)
    provider.expires_in = 28800
    auth = github(provider, hub, allow_all=True)
    state = dict((await login(auth)).result.auth_state or {})
    assert state["refresh_token"].startswith("ghr_")
    user = UserInfo(name="octocat")
    stale = {**state, "expires_at": time.time() + 5}  # inside the refresh margin
    refreshed = await auth.refresh_user(user, stale)
    assert isinstance(refreshed, AuthResult)
    assert (refreshed.auth_state or {})["access_token"] != state["access_token"]
    assert refreshed.groups == ("github", "github:justice-league", "jupyterhub")
    assert await auth.refresh_user(user, {**stale, "refresh_token": "ghr_revoked"}) is False
    await auth.aclose()


async def test_used_code_and_bad_credentials_have_clear_messages(provider: FakeProvider, hub: HubInfo) -> None:
    answers(provider)
    auth = github(provider, hub, allow_all=True)
    start = await auth.start_login("/", REDIRECT_URI)
    state = parse_qs(urlsplit(start.url).query)["state"][0]
    with pytest.raises(AuthFailed, match="already used or has expired"):
        await auth.complete_login({"code": "never-issued", "state": state}, start.state, REDIRECT_URI)
    wrong = github(provider, hub, allow_all=True, client_secret="not-the-secret")
    with pytest.raises(AuthFailed, match="client credentials"):
        await login(wrong)
    await auth.aclose()
    await wrong.aclose()


async def test_enterprise_urls_must_be_https(hub: HubInfo) -> None:
    with pytest.raises(ValueError, match="must use https"):
        GitHubConfig(client_id="c", github_url="http://github.example.com")
