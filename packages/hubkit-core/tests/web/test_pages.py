"""Pages and browser security: login, XSRF, home/spawn/pending, admin, tokens, stopped-server routing."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
SAME = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}


async def test_login_sets_hardened_cookies(client):
    page = await client.get("/hub/login?next=/hub/token")
    assert page.status_code == 200 and 'name="username"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
    r = await client.post(
        "/hub/login?next=/hub/token", data={"username": "alice", "password": "", "_xsrf": xsrf}, headers=SAME
    )
    assert r.status_code == 302 and r.headers["location"] == "/hub/token"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("hubkit-session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/hub/" in session
    sid = next(c for c in cookies if c.startswith("jupyterhub-session-id="))
    assert "Path=/" in sid and "HttpOnly" in sid
    assert (await client.get("/hub/home")).status_code == 200
    # open redirects are refused
    r = await client.get("/hub/login?next=//evil.example/x")
    assert r.status_code == 302 and r.headers["location"] == "/hub/home"


async def test_login_without_xsrf_refused(client):
    r = await client.post("/hub/login", data={"username": "alice", "password": ""})
    assert r.status_code == 403
    assert "hubkit-session" not in r.headers.get("set-cookie", "")


async def test_cross_site_post_refused_but_tokens_work(client, hub, login, make_token, admin_headers):
    await client.post("/hub/api/users/alice", headers=admin_headers)
    xsrf = await login("alice")
    # a cross-site form post carrying the victim's valid session cookie
    for headers, data in (
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, {"_xsrf": xsrf}),
        ({"Origin": "https://evil.example"}, {"_xsrf": xsrf}),
        ({"Sec-Fetch-Site": "same-site"}, {"_xsrf": xsrf}),
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, {"_xsrf": xsrf}),
        (SAME, {}),
        (SAME, {"_xsrf": "0" * 64}),
    ):
        r = await client.post("/hub/spawn/alice", data=data, headers=headers)
        assert r.status_code == 403, headers
    # the cookie-authenticated API needs the token too
    r = await client.post("/hub/api/users/alice/server", headers=SAME)
    assert r.status_code == 403
    r = await client.get("/hub/api/users/alice", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    model = (await client.get("/hub/api/users/alice", headers=admin_headers)).json()
    assert model["servers"] == {}
    # token-authenticated API calls are unaffected by Origin / Sec-Fetch headers
    tok = {
        "Authorization": f"token {await make_token('alice')}",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
    }
    assert (await client.post("/hub/api/users/alice/server", headers=tok)).status_code == 201
    assert (await client.delete("/hub/api/users/alice/server", headers=tok)).status_code == 204


async def test_home_spawn_pending_stop(client, login):
    xsrf = await login("alice")
    home = await client.get("/hub/home")
    assert 'data-status="stopped"' in home.text
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf}, headers=SAME)
    assert r.status_code == 303 and r.headers["location"] == "/hub/spawn-pending/alice"
    pending = await client.get("/hub/spawn-pending/alice")
    assert pending.status_code == 200
    progress_url = re.search(r'data-progress-url="([^"]*)"', pending.text).group(1)
    if progress_url:  # still starting: follow the same event stream the page's script reads
        stream = await client.get(progress_url, headers={"Sec-Fetch-Site": "same-origin"})
        assert '"ready": true' in stream.text
    home = await client.get("/hub/home")
    assert 'data-status="running"' in home.text and 'href="/user/alice/"' in home.text
    r = await client.post(
        "/hub/servers/action",
        data={"_xsrf": xsrf, "user": "alice", "server": "", "action": "stop"},
        headers=SAME,
    )
    assert r.status_code == 303
    assert 'data-status="stopped"' in (await client.get("/hub/home")).text
    # a named server from the home form, then deleted
    r = await client.post("/hub/spawn/alice", data={"_xsrf": xsrf, "server_name": "nb1"}, headers=SAME)
    assert r.status_code == 303 and r.headers["location"] == "/hub/spawn-pending/alice/nb1"
    assert 'data-server="nb1"' in (await client.get("/hub/home")).text
    await client.post(
        "/hub/servers/action",
        data={"_xsrf": xsrf, "user": "alice", "server": "nb1", "action": "stop"},
        headers=SAME,
    )
    await client.post(
        "/hub/servers/action",
        data={"_xsrf": xsrf, "user": "alice", "server": "nb1", "action": "delete"},
        headers=SAME,
    )
    assert 'data-server="nb1"' not in (await client.get("/hub/home")).text


async def test_failed_spawn_page_shows_reason(client, login, admin_headers):
    await login("alice")
    await client.post("/hub/api/users/alice/server", json={"behaviour": "raise"}, headers=admin_headers)
    page = await client.get("/hub/spawn-pending/alice")
    assert page.status_code == 200
    assert "Spawn failed" in page.text and "told to fail" in page.text and "test-failure" in page.text


async def test_stopped_server_routing(client, login, admin_headers):
    r = await client.get("/user/alice/lab?x=1")
    assert r.status_code == 302 and r.headers["location"] == "/hub/user/alice/lab?x=1"
    r = await client.get("/hub/user/alice/lab")
    assert r.status_code == 302 and r.headers["location"].startswith("/hub/login?next=")
    await login("alice")
    r = await client.get("/hub/user/alice/lab")
    assert r.status_code == 424 and 'action="/hub/spawn/alice"' in r.text
    r = await client.get("/hub/user/alice/api/contents")
    assert r.status_code == 424 and "Restart the server at /hub/spawn/alice" in r.json()["message"]
    r = await client.get("/hub/user-redirect/tree/x.ipynb")
    assert r.status_code == 302 and r.headers["location"] == "/user/alice/tree/x.ipynb"
    await client.post("/hub/api/users/bob", headers=admin_headers)
    assert (await client.get("/hub/user/bob/lab")).status_code == 404
    r = await client.get("/hub/error/503?url=%2Fuser%2Falice%2F")
    assert r.status_code == 503 and "/user/alice/" in r.text


async def test_admin_page_search_sort_paginate(client, hub, login, admin_headers):
    assert admin_headers
    from hubkit.storage.orm import User

    async with hub.db() as s:
        s.add_all([User(name=f"user{i:05d}", cookie_id="x") for i in range(1200)])
        await s.commit()
    await login("admin")
    r = await client.get("/hub/admin?q=user00777")
    assert r.status_code == 200
    names = re.findall(r'class="user-name">([^<]+)<', r.text)
    assert names == ["user00777"]
    r = await client.get("/hub/admin?sort=name&order=desc&per_page=25&page=2")
    names = re.findall(r'class="user-name">([^<]+)<', r.text)
    assert names[0] == "user01174" and len(names) == 25
    assert "page 2 of 49" in r.text
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', r.text).group(1)
    r = await client.post(
        "/hub/admin/action", data={"_xsrf": xsrf, "action": "delete_user", "user": "user00001"}, headers=SAME
    )
    assert r.status_code == 303
    assert (await client.get("/hub/api/users/user00001", headers=admin_headers)).status_code == 404
    await login("alice")
    assert (await client.get("/hub/admin")).status_code == 403


async def test_token_page(client, login):
    xsrf = await login("alice")
    r = await client.post(
        "/hub/token",
        data={"_xsrf": xsrf, "note": "laptop", "scopes": "read:users!user", "expires_in": "3600"},
        headers=SAME,
    )
    assert r.status_code == 201
    secret = re.search(r'id="new-token">(\w+)<', r.text).group(1)
    me = await client.get("/hub/api/user", headers={"Authorization": f"token {secret}"})
    assert me.status_code == 200
    r = await client.post("/hub/token", data={"_xsrf": xsrf, "scopes": "admin:users"}, headers=SAME)
    assert r.status_code == 400
    page = await client.get("/hub/token")
    tid = re.search(r'name="token_id" value="(\d+)"', page.text).group(1)
    await client.post("/hub/token/revoke", data={"_xsrf": xsrf, "token_id": tid}, headers=SAME)
    assert (
        await client.get("/hub/api/user", headers={"Authorization": f"token {secret}"})
    ).status_code == 403


async def test_health_and_metrics(client, admin_headers):
    assert (await client.get("/hub/health")).status_code == 200
    assert (await client.get("/hub/metrics")).status_code == 403
    await client.post("/hub/api/users/alice", headers=admin_headers)
    await client.post("/hub/api/users/alice/server", headers=admin_headers)
    r = await client.get("/hub/metrics", headers=admin_headers)
    assert r.status_code == 200
    text = r.text
    assert "hubkit_running_servers 1.0" in text
    assert 'hubkit_spawn_phase_duration_seconds_bucket{le="3600.0"' in text
    assert "hubkit_request_duration_seconds_bucket" in text
    assert "hubkit_spawn_queue_length" in text


async def test_admin_revokes_all_tokens_of_a_user(client, login, admin_headers, make_token):
    t1 = await make_token("carol")
    t2 = await make_token("carol", scopes=["read:users!user"])
    for t in (t1, t2):
        assert (await client.get("/hub/api/user", headers={"Authorization": f"token {t}"})).status_code == 200
    await login("admin")
    page = await client.get("/hub/admin?q=carol")
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
    r = await client.post(
        "/hub/admin/action", data={"_xsrf": xsrf, "action": "revoke_tokens", "user": "carol"}, headers=SAME
    )
    assert r.status_code == 303 and "Revoked+2+token" in r.headers["location"]
    for t in (t1, t2):
        assert (await client.get("/hub/api/user", headers={"Authorization": f"token {t}"})).status_code == 403
    # the admin's own token is untouched
    assert (await client.get("/hub/api/user", headers=admin_headers)).status_code == 200
