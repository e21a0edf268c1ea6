"""Users API: JupyterHub's list envelope, filters, CRUD, and refusal of bad input without side effects."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
PAGED = {"Accept": "application/jupyterhub-pagination+json"}


async def test_pagination_envelope_follows_next(client, admin_headers):
    r = await client.post(
        "/hub/api/users", json={"usernames": ["u1", "u2", "u3", "u4"]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert sorted(u["name"] for u in r.json()) == ["u1", "u2", "u3", "u4"]
    seen = []
    url = "/hub/api/users?limit=2"
    pages = 0
    while url:
        r = await client.get(url, headers={**admin_headers, **PAGED})
        assert r.status_code == 200
        body = r.json()
        assert body["_pagination"]["total"] == 5  # admin + 4
        assert len(body["items"]) <= 2
        seen += [u["name"] for u in body["items"]]
        nxt = body["_pagination"]["next"]
        url = nxt["url"] if nxt else None
        if url:
            assert url.startswith("http://127.0.0.1:8000/hub/api/users?")
        pages += 1
        assert pages < 10
    assert sorted(seen) == ["admin", "u1", "u2", "u3", "u4"]
    bare = await client.get("/hub/api/users?limit=2", headers=admin_headers)
    assert isinstance(bare.json(), list) and len(bare.json()) == 2


async def test_state_filters_and_sort(client, admin_headers):
    await client.post("/hub/api/users", json={"usernames": ["zed", "amy"]}, headers=admin_headers)
    r = await client.post("/hub/api/users/amy/server", headers=admin_headers)
    assert r.status_code in (201, 202)
    ready = await client.get("/hub/api/users?state=ready", headers=admin_headers)
    assert [u["name"] for u in ready.json()] == ["amy"]
    assert ready.json()[0]["servers"][""]["ready"] is True
    inactive = await client.get("/hub/api/users?state=inactive&sort=-name", headers=admin_headers)
    assert [u["name"] for u in inactive.json()] == ["zed", "admin"]
    active = await client.get("/hub/api/users?state=active", headers=admin_headers)
    assert [u["name"] for u in active.json()] == ["amy"]
    bad = await client.get("/hub/api/users?state=sleepy", headers=admin_headers)
    assert bad.status_code == 400 and bad.json()["status"] == 400
    assert (await client.get("/hub/api/users?sort=password", headers=admin_headers)).status_code == 400
    assert (await client.get("/hub/api/users?limit=abc", headers=admin_headers)).status_code == 400
    named = await client.get("/hub/api/users?name_filter=ZE", headers=admin_headers)
    assert [u["name"] for u in named.json()] == ["zed"]


async def test_crud_and_errors(client, admin_headers):
    h = admin_headers
    assert (await client.post("/hub/api/users/carol", headers=h)).status_code == 201
    assert (await client.post("/hub/api/users/carol", headers=h)).status_code == 409
    assert (await client.post("/hub/api/users", json={"usernames": ["carol"]}, headers=h)).status_code == 409
    r = await client.get("/hub/api/users/carol", headers=h)
    assert r.status_code == 200
    model = r.json()
    for key in ("kind", "name", "admin", "groups", "servers", "last_activity", "created", "roles"):
        assert key in model
    r = await client.patch("/hub/api/users/carol", json={"name": "carla", "admin": True}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "carla" and r.json()["admin"] is True
    assert (await client.get("/hub/api/users/carol", headers=h)).status_code == 404
    r = await client.patch("/hub/api/users/carla", json={"password": "x"}, headers=h)
    assert r.status_code == 400 and "Invalid JSON keys" in r.json()["message"]
    r = await client.patch("/hub/api/users/carla", json={"admin": "yes"}, headers=h)
    assert r.status_code == 400
    assert (await client.get("/hub/api/users/carla", headers=h)).json()["admin"] is True
    assert (await client.delete("/hub/api/users/carla", headers=h)).status_code == 204
    assert (await client.get("/hub/api/users/carla", headers=h)).status_code == 404
    assert (await client.delete("/hub/api/users/admin", headers=h)).status_code == 400


@pytest.mark.parametrize(
    "name",
    ["a/b", "..", ".hidden", "tab\there", "nul\x00", "new\nline", "x" * 300, "sp ace", "q?x", "pct%2F"],
)
async def test_hostile_user_names_refused(client, admin_headers, name):
    r = await client.post("/hub/api/users", json={"usernames": [name]}, headers=admin_headers)
    assert r.status_code == 400, (name, r.status_code, r.text)
    assert r.json()["status"] == 400 and r.json()["message"]
    users = (await client.get("/hub/api/users", headers=admin_headers)).json()
    assert [u["name"] for u in users] == ["admin"]


async def test_malformed_bodies(client, admin_headers):
    h = {**admin_headers, "Content-Type": "application/json"}
    for body in (
        b"{",
        b"[1,2]",
        b'"x"',
        b"\xff\xfe",
        b'{"usernames": "alice"}',
        b'{"usernames": ["a"], "extra": 1}',
    ):
        r = await client.post("/hub/api/users", content=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert isinstance(r.json()["message"], str)
    assert [u["name"] for u in (await client.get("/hub/api/users", headers=admin_headers)).json()] == [
        "admin"
    ]


async def test_oversized_body_413(client, hub, admin_headers):
    limit = hub.settings.hub.max_body_bytes
    big = b'{"usernames": ["' + b"a" * (limit + 10) + b'"]}'
    r = await client.post(
        "/hub/api/users", content=big, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 413

    async def chunks():  # no Content-Length: the streaming bound applies
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536

    r = await client.post(
        "/hub/api/users", content=chunks(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert [u["name"] for u in (await client.get("/hub/api/users", headers=admin_headers)).json()] == [
        "admin"
    ]


async def test_auth_headers_and_scopes(client, make_token):
    alice = await make_token("alice")
    await make_token("bob")
    for header in (f"token {alice}", f"Bearer {alice}", f"bearer {alice}", f"TOKEN {alice}"):
        r = await client.get("/hub/api/user", headers={"Authorization": header})
        assert r.status_code == 200, header
        assert r.json()["name"] == "alice"
    assert (await client.get("/hub/api/user", headers={"Authorization": "token nope"})).status_code == 403
    assert (await client.get("/hub/api/user")).status_code == 403
    assert (await client.get("/hub/api/user?token=" + alice)).status_code == 403
    h = {"Authorization": f"token {alice}"}
    r = await client.get("/hub/api/users", headers=h)
    assert r.status_code == 403 and "requires any of" in r.json()["message"]
    assert (await client.get("/hub/api/users/alice", headers=h)).status_code == 200
    assert (await client.get("/hub/api/users/bob", headers=h)).status_code == 404
    assert (await client.delete("/hub/api/users/bob", headers=h)).status_code == 403


async def test_filtered_list_users(client, make_token):
    await make_token("bob")
    await make_token("alice")
    # a plain user does not hold list:users, so asking for it yields nothing
    weak = await make_token("alice", scopes=["list:users"])
    assert (await client.get("/hub/api/users", headers={"Authorization": f"token {weak}"})).status_code == 403
    # an admin's token restricted by a filter lists only what the filter covers
    t = await make_token("boss", admin=True, scopes=["list:users!user=bob", "read:users!user=bob"])
    r = await client.get("/hub/api/users", headers={"Authorization": f"token {t}"})
    assert r.status_code == 200
    assert [u["name"] for u in r.json()] == ["bob"]
    assert (
        await client.get("/hub/api/users/alice", headers={"Authorization": f"token {t}"})
    ).status_code == 404


async def test_huge_paging_numbers_are_400(client, admin_headers):
    # found by the schemathesis run: an offset beyond SQL integer range must not become a 500
    for path in (
        "/hub/api/groups?offset=1014179607185856466518016",
        "/hub/api/users?limit=99999999999999999999999",
    ):
        r = await client.get(path, headers=admin_headers)
        assert r.status_code == 400, path
