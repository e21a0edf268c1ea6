"""Token and OAuth-cookie authentication against a real jupyter-server with the extension."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fakehub import FakeHub
from su_harness import Server, launch, shutdown

pytestmark = pytest.mark.timeout(120)


def test_owner_token_gets_in_and_others_get_403(server: Server, fakehub: FakeHub) -> None:
    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    bob = fakehub.add_token("bob", ["access:servers!server=bob/"])
    r = httpx.get(server.url + "api/contents", headers={"Authorization": f"token {alice}"})
    assert r.status_code == 200, r.text
    assert r.headers["X-JupyterHub-Version"] == "6.1.1"
    r = httpx.get(server.url + "api/contents", headers={"Authorization": f"Bearer {alice}"})
    assert r.status_code == 200
    r = httpx.get(server.url + "api/contents", headers={"Authorization": f"token {bob}"})
    assert r.status_code == 403
    assert "bob is not allowed" in r.text
    assert httpx.get(server.url + "api/contents", headers={"Authorization": "token nope"}).status_code == 403
    assert httpx.get(server.url + "api/contents").status_code == 403
    # the hub is asked with "token" form even when the caller used Bearer
    user_calls = [h for m, p, h in fakehub.requests if p == "/hub/api/user"]
    assert all(h["Authorization"].startswith("token ") for h in user_calls)


SCOPE_CASES = [
    (["access:servers"], 200),
    (["access:servers!user=alice"], 200),
    (["access:servers!server=alice/"], 200),
    (["read:users:name!user=alice", "access:servers!server=alice/"], 200),
    (["access:servers!server=alice/nb1"], 403),
    (["access:servers!user=alicia"], 403),
    (["access:servers!group=staff"], 403),
    (["access:services"], 403),
    (["read:users"], 403),
    ([], 403),
]


def test_scope_filters(server: Server, fakehub: FakeHub) -> None:
    for scopes, status in SCOPE_CASES:
        tok = fakehub.add_token("carol", scopes)
        r = httpx.get(server.url + "api/status", headers={"Authorization": f"token {tok}"})
        assert r.status_code == status, scopes


def test_token_in_url_only_for_websockets(server: Server, fakehub: FakeHub) -> None:
    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    assert httpx.get(server.url + f"api/status?token={alice}").status_code == 403
    r = httpx.get(server.url + f"api/status?token={alice}", headers={"Sec-Fetch-Mode": "websocket"})
    assert r.status_code == 200


def test_token_requests_skip_xsrf_but_cookie_posts_need_it(server: Server, fakehub: FakeHub) -> None:
    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    r = httpx.post(
        server.url + "api/contents", json={"type": "notebook"}, headers={"Authorization": f"token {alice}"}
    )
    assert r.status_code == 201, r.text


def test_browser_oauth_login_with_pkce(server: Server, fakehub: FakeHub) -> None:
    with httpx.Client(follow_redirects=False) as c:
        r = c.get(server.url + "api/status")
        assert r.status_code == 403  # API paths never redirect
        r = c.get(server.url + "lab")
        assert r.status_code == 302
        login = r.headers["Location"]
        assert urlsplit(login).path == "/user/alice/login"
        r = c.get(httpx.URL(server.url).join(login))
        assert r.status_code == 302
        auth = urlsplit(r.headers["Location"])
        assert f"{auth.scheme}://{auth.netloc}" == fakehub.url
        assert auth.path == "/hub/api/oauth2/authorize"
        q = {k: v[0] for k, v in parse_qs(auth.query).items()}
        assert q["client_id"] == "jupyterhub-user-alice"
        assert q["redirect_uri"] == "/user/alice/oauth_callback"
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        assert "scope" not in q
        r = c.get(r.headers["Location"])  # fake hub: 302 to the callback
        assert r.status_code == 302
        cb = r.headers["Location"]
        # a forged state is refused
        bad = c.get(cb.replace(f"state={q['state']}", "state=forged"))
        assert bad.status_code == 403
        r = c.get(cb)
        assert r.status_code == 302, r.text
        assert urlsplit(r.headers["Location"]).path == "/user/alice/lab"
        assert "jupyterhub-user-alice" in c.cookies
        # code exchange used the form body secret and a PKCE verifier
        form = fakehub.token_requests[-1]
        assert form["client_secret"] == fakehub.server_token
        assert form["grant_type"] == "authorization_code"
        assert len(form["code_verifier"]) >= 43
        r = c.get(server.url + "api/contents")
        assert r.status_code == 200
        r = c.get(server.url + "lab")
        assert r.status_code == 200
        # replaying the callback (state used up) is refused
        assert c.get(cb).status_code == 403


def test_other_user_via_oauth_is_refused(server: Server, fakehub: FakeHub) -> None:
    fakehub.browser_user = "bob"
    with httpx.Client(follow_redirects=True) as c:
        r = c.get(server.url + "lab")
        assert r.status_code == 403
        assert "jupyterhub-user-alice" not in c.cookies


def test_login_next_cannot_leave_the_server(server: Server, fakehub: FakeHub) -> None:
    with httpx.Client(follow_redirects=True) as c:
        r = c.get(server.url + "login?next=https://evil.example/")
        assert r.status_code == 200
        assert str(r.url).startswith(server.url)


def test_revoked_token_is_refused_within_the_configured_cache_window(fakehub: FakeHub, tmp_path: Path) -> None:
    """A hub logout revokes the browser's token at the hub; the server believes the hub's last answer for
    HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS, so that is how long the revoked token still works here."""
    server = launch(fakehub, tmp_path, extra={"HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS": "2"})
    try:
        alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
        url = server.url + "api/status"
        headers = {"Authorization": f"token {alice}"}
        assert httpx.get(url, headers=headers).status_code == 200
        asked = len([p for m, p, h in fakehub.requests if p == "/hub/api/user"])
        assert httpx.get(url, headers=headers).status_code == 200  # from the cache: the hub is not asked
        assert len([p for m, p, h in fakehub.requests if p == "/hub/api/user"]) == asked
        del fakehub.tokens[alice]  # revoked at the hub
        revoked_at = time.monotonic()
        while httpx.get(url, headers=headers).status_code == 200:
            assert time.monotonic() - revoked_at < 2 + 3, "the revoked token still works after the window"
            time.sleep(0.1)
        assert httpx.get(url, headers=headers).status_code == 403
        # a hub that cannot answer does not lock out someone it vouched for moments ago (the server
        # outlives a hub restart), but a token it never vouched for gets nowhere
        carol = fakehub.add_token("carol", ["access:servers!server=alice/"])
        assert httpx.get(url, headers={"Authorization": f"token {carol}"}).status_code == 200
        fakehub.failing = True
        time.sleep(2.2)  # past the cache window
        assert httpx.get(url, headers={"Authorization": f"token {carol}"}).status_code == 200
        stranger = fakehub.add_token("alice", ["access:servers!server=alice/"])
        assert httpx.get(url, headers={"Authorization": f"token {stranger}"}).status_code == 502
    finally:
        shutdown(server)
