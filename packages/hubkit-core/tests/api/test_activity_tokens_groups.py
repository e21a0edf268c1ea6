"""Activity (C6), tokens (C7), groups (C8), services (C9), identity (B6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hubkit.auth.tokens import issue_token
from hubkit.storage.orm import Server, User
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def server_token(hub, user: str, server: str = "") -> str:
    """A token shaped exactly like the engine's server token (kind ``server``, tied to the server row)."""
    from hubkit.spawn.env import server_token_scopes

    async with hub.db() as s:
        u = (await s.execute(select(User).where(User.name == user))).scalar_one()
        srv = (
            await s.execute(select(Server).where(Server.user_id == u.id, Server.name == server))
        ).scalar_one()
        secret, _ = await issue_token(
            s, user_id=u.id, server_id=srv.id, scopes=server_token_scopes(user, server), kind="server"
        )
        await s.commit()
    return secret


async def test_activity_rules(client, hub, admin_headers):
    h = admin_headers
    await client.post("/hub/api/users/alice", headers=h)
    await client.post("/hub/api/users/bob", headers=h)
    assert (await client.post("/hub/api/users/alice/server", headers=h)).status_code == 201
    tok = {"Authorization": f"token {await server_token(hub, 'alice')}"}
    now = datetime.now(UTC)
    body = {"servers": {"": {"last_activity": ts(now)}}, "last_activity": ts(now)}
    r = await client.post("/hub/api/users/alice/activity", json=body, headers=tok)
    assert r.status_code == 200 and r.content == b""
    assert (await client.post("/hub/api/users/alice/activity", json=body, headers=tok)).status_code == 200
    older = {"servers": {"": {"last_activity": ts(now - timedelta(hours=1))}}}
    assert (await client.post("/hub/api/users/alice/activity", json=older, headers=tok)).status_code == 200
    model = (await client.get("/hub/api/users/alice", headers=h)).json()
    assert model["servers"][""]["last_activity"] == ts(now)  # older values never move it back
    assert model["last_activity"] == ts(now)
    bad = {"servers": {"nope": {"last_activity": ts(now)}}}
    r = await client.post("/hub/api/users/alice/activity", json=bad, headers=tok)
    assert r.status_code == 400 and "No such server" in r.json()["message"]
    future = {"last_activity": ts(now + timedelta(hours=2))}
    assert (await client.post("/hub/api/users/alice/activity", json=future, headers=tok)).status_code == 400
    assert (
        await client.post("/hub/api/users/alice/activity", json={"last_activity": "yesterday"}, headers=tok)
    ).status_code == 400
    assert (await client.post("/hub/api/users/bob/activity", json=body, headers=tok)).status_code == 404
    # rich hubkit activity is stored per server
    rich = {
        "servers": {
            "": {"last_activity": ts(now), "hubkit": {"kernels": 2, "kernels_busy": 1, "connections": 1}}
        }
    }
    assert (await client.post("/hub/api/users/alice/activity", json=rich, headers=tok)).status_code == 200
    srv = (await client.get("/hub/api/users/alice/server", headers=h)).json()
    assert srv["hubkit_activity"]["kernels_busy"] == 1
    # hubkit-singleuser also sends when a kernel was last busy: the request schema must take it
    busy = {"servers": {"": {"hubkit": {"kernels": 1, "kernels_busy": 1, "last_busy": ts(now)}}}}
    r = await client.post("/hub/api/users/alice/activity", json=busy, headers=tok)
    assert r.status_code == 200, r.text
    srv = (await client.get("/hub/api/users/alice/server", headers=h)).json()
    assert srv["hubkit_activity"]["last_busy"]
    bad_rich = {"servers": {"": {"hubkit": {"kernels_busy": -1}}}}
    assert (await client.post("/hub/api/users/alice/activity", json=bad_rich, headers=tok)).status_code == 400
    # the server token's identity (B6)
    for header in (tok["Authorization"], tok["Authorization"].replace("token", "Bearer")):
        me = (await client.get("/hub/api/user", headers={"Authorization": header})).json()
        assert me["kind"] == "user" and me["name"] == "alice" and me["session_id"] is None
        assert "access:servers!server=alice/" in me["scopes"]
        assert "users:activity!user=alice" in me["scopes"]
        assert "read:users:name!user=alice" in me["scopes"]
        assert me["token_id"].startswith("a")


async def test_tokens_api(client, hub, make_token):
    alice = {"Authorization": f"token {await make_token('alice')}"}
    await make_token("bob")
    r = await client.post(
        "/hub/api/users/alice/tokens",
        json={"note": "ci", "expires_in": 3600, "scopes": ["read:users!user=alice"]},
        headers=alice,
    )
    assert r.status_code == 201, r.text
    model = r.json()
    assert len(model["token"]) == 32 and model["note"] == "ci" and model["expires_at"]
    new = {"Authorization": f"token {model['token']}"}
    assert model["last_activity"] is None
    assert (await client.get("/hub/api/users/alice", headers=new)).status_code == 200
    used = (await client.get(f"/hub/api/users/alice/tokens/{model['id']}", headers=alice)).json()
    assert used["last_activity"] is not None  # "last used" is recorded
    assert (await client.post("/hub/api/users/alice/server", headers=new)).status_code == 403
    listed = (await client.get("/hub/api/users/alice/tokens", headers=alice)).json()["api_tokens"]
    assert model["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)
    got = await client.get(f"/hub/api/users/alice/tokens/{model['id']}", headers=alice)
    assert got.status_code == 200 and got.json()["note"] == "ci"
    assert (await client.get("/hub/api/users/alice/tokens/12", headers=alice)).status_code == 404
    # scopes the owner lacks are refused, not silently dropped
    r = await client.post("/hub/api/users/alice/tokens", json={"scopes": ["admin:users"]}, headers=alice)
    assert r.status_code == 400
    r = await client.post("/hub/api/users/alice/tokens", json={"scopes": ["no-such-scope"]}, headers=alice)
    assert r.status_code == 400
    r = await client.post("/hub/api/users/alice/tokens", json={"expires_in": "soon"}, headers=alice)
    assert r.status_code == 400
    assert (await client.post("/hub/api/users/bob/tokens", json={}, headers=alice)).status_code == 404
    assert (
        await client.delete(f"/hub/api/users/alice/tokens/{model['id']}", headers=alice)
    ).status_code == 204
    assert (await client.get("/hub/api/users/alice", headers=new)).status_code == 403


async def test_expired_token_refused(client, make_token):
    import asyncio

    t = await make_token("alice", expires_in=0.2)
    assert (await client.get("/hub/api/user", headers={"Authorization": f"token {t}"})).status_code == 200
    await asyncio.sleep(0.4)
    assert (await client.get("/hub/api/user", headers={"Authorization": f"token {t}"})).status_code == 403


async def test_groups_api(client, admin_headers):
    h = admin_headers
    await client.post("/hub/api/users", json={"usernames": ["carol", "dan"]}, headers=h)
    r = await client.post("/hub/api/groups", json={"groups": ["g1", "g2"], "users": ["carol"]}, headers=h)
    assert r.status_code == 201 and r.json()[0] == {
        "kind": "group",
        "name": "g1",
        "users": ["carol"],
        "roles": [],
        "properties": {},
    }
    assert (await client.post("/hub/api/groups/g1", headers=h)).status_code == 409
    assert (await client.post("/hub/api/groups/g3", json={"users": ["ghost"]}, headers=h)).status_code == 404
    r = await client.post("/hub/api/groups/g1/users", json={"users": ["dan"]}, headers=h)
    assert r.status_code == 200 and r.json()["users"] == ["carol", "dan"]
    r = await client.request("DELETE", "/hub/api/groups/g1/users", json={"users": ["carol"]}, headers=h)
    assert r.json()["users"] == ["dan"]
    r = await client.put("/hub/api/groups/g1/properties", json={"course": "x"}, headers=h)
    assert r.json()["properties"] == {"course": "x"}
    assert (await client.get("/hub/api/users/dan", headers=h)).json()["groups"] == ["g1"]
    listing = await client.get(
        "/hub/api/groups", headers={**h, "Accept": "application/jupyterhub-pagination+json"}
    )
    assert listing.json()["_pagination"]["total"] == 2
    assert (await client.delete("/hub/api/groups/g2", headers=h)).status_code == 204
    assert (await client.get("/hub/api/groups/g2", headers=h)).status_code == 404
    assert (await client.post("/hub/api/groups", json={"groups": ["a/b"]}, headers=h)).status_code == 400


async def test_services_and_info(client, admin_headers):
    h = admin_headers
    r = await client.post("/hub/api/services/culler", json={"scopes": ["list:users"]}, headers=h)
    assert r.status_code == 201
    svc = (await client.get("/hub/api/services", headers=h)).json()
    assert svc["culler"]["kind"] == "service"
    assert (await client.post("/hub/api/services/culler", headers=h)).status_code == 409
    info = (await client.get("/hub/api/info", headers=h)).json()
    assert info["version"] == "6.1.1" and "hubkit_version" in info and "class" in info["spawner"]
    assert (await client.delete("/hub/api/services/culler", headers=h)).status_code == 200
    assert (await client.get("/hub/api/proxy", headers=h)).status_code == 200
    assert (await client.post("/hub/api/proxy", headers=h)).status_code == 200
    r = await client.get("/hub/api/nope", headers=h)
    assert r.status_code == 404 and r.json()["status"] == 404
    assert (await client.options("/hub/api/users")).status_code == 200
