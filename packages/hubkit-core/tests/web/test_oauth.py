"""The OAuth2 provider (compat B): authorize with login redirect, code exchange strictness, logout revocation."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hubkit.auth.tokens import hash_secret
from hubkit.storage.orm import APIToken, OAuthClient
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

CALLBACK = "/user/alice/oauth_callback"
SECRET = "s" * 32


async def _server_with_client(client, hub, headers) -> None:
    await client.post("/hub/api/users/alice", headers=headers)
    assert (await client.post("/hub/api/users/alice/server", headers=headers)).status_code == 201
    async with hub.db() as s:  # the engine made the client at spawn; give it a secret this test knows
        row = (
            await s.execute(select(OAuthClient).where(OAuthClient.identifier == "jupyterhub-user-alice"))
        ).scalar_one()
        assert row.redirect_uri == CALLBACK
        row.secret_hash = hash_secret(SECRET)
        await s.commit()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_url(challenge: str, state: str = "st4te", redirect: str = CALLBACK) -> str:
    return (
        f"/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri={quote(redirect, safe='')}"
        f"&response_type=code&code_challenge={challenge}&code_challenge_method=S256&state={state}"
    )


async def get_code(client, challenge: str) -> str:
    r = await client.get(authorize_url(challenge))
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert loc.path == CALLBACK
    q = parse_qs(loc.query)
    assert q["state"] == ["st4te"] and len(q["code"][0]) == 30
    return q["code"][0]


def form(code: str, verifier: str | None, **over: str) -> dict[str, str]:
    data = {
        "client_id": "jupyterhub-user-alice",
        "client_secret": SECRET,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(over)
    return data


async def test_browser_flow_and_token_strictness(client, hub, admin_headers, login):
    await _server_with_client(client, hub, admin_headers)
    verifier, challenge = pkce()
    # not logged in: sent to the login page with next = the authorize URL
    r = await client.get(authorize_url(challenge))
    assert r.status_code == 302
    assert r.headers["location"].startswith("/hub/login?next=%2Fhub%2Fapi%2Foauth2%2Fauthorize")
    await login("alice")
    code = await get_code(client, challenge)
    tok = await client.post("/hub/api/oauth2/token", data=form(code, verifier))
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 14 * 86400
    assert "access:servers!server=alice/" in body["scope"].split()
    assert tok.headers["cache-control"] == "no-store"
    me = await client.get("/hub/api/user", headers={"Authorization": f"token {body['access_token']}"})
    assert me.status_code == 200 and me.json()["name"] == "alice"
    assert "access:servers!server=alice/" in me.json()["scopes"]
    assert me.json()["session_id"]
    # replay
    r = await client.post("/hub/api/oauth2/token", data=form(code, verifier))
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant"}
    # wrong secret / secret only in Basic auth
    code = await get_code(client, challenge)
    r = await client.post("/hub/api/oauth2/token", data=form(code, verifier, client_secret="wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    basic = base64.b64encode(f"jupyterhub-user-alice:{SECRET}".encode()).decode()
    data = form(code, verifier)
    del data["client_secret"]
    r = await client.post("/hub/api/oauth2/token", data=data, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 401
    # redirect_uri off by one char
    code = await get_code(client, challenge)
    r = await client.post("/hub/api/oauth2/token", data=form(code, verifier, redirect_uri=CALLBACK + "x"))
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_request",
        "error_description": "Mismatching redirect URI.",
    }
    # wrong / missing verifier
    code = await get_code(client, challenge)
    r = await client.post("/hub/api/oauth2/token", data=form(code, "x" * 43))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code = await get_code(client, challenge)
    r = await client.post("/hub/api/oauth2/token", data=form(code, None))
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_request",
        "error_description": "Code verifier required.",
    }
    r = await client.post("/hub/api/oauth2/token", data=form("c", None, grant_type="password"))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    # logout revokes this browser session's OAuth tokens
    assert (await client.get("/hub/logout")).status_code == 302
    me = await client.get("/hub/api/user", headers={"Authorization": f"token {body['access_token']}"})
    assert me.status_code == 403
    async with hub.db() as s:
        assert (await s.execute(select(APIToken).where(APIToken.kind == "oauth"))).first() is None


async def test_authorize_refusals(client, hub, admin_headers, login):
    await _server_with_client(client, hub, admin_headers)
    await client.post("/hub/api/users/bob", headers=admin_headers)
    _, challenge = pkce()
    await login("bob")
    r = await client.get(authorize_url(challenge))
    assert r.status_code == 403 and "do not have permission" in r.text
    r = await client.get(authorize_url(challenge, redirect="https://evil.example/cb"))
    assert r.status_code == 400 and "evil" not in r.headers.get("location", "")
    r = await client.get(authorize_url(challenge).replace("jupyterhub-user-alice", "nobody"))
    assert r.status_code == 400
