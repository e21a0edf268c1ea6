"""Server start/stop through the API with the real spawn engine and test spawner, and the progress stream."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_default_server_lifecycle(client, admin_headers):
    h = admin_headers
    await client.post("/hub/api/users/alice", headers=h)
    r = await client.post("/hub/api/users/alice/server", headers=h)
    assert r.status_code == 201, r.text
    model = (await client.get("/hub/api/users/alice", headers=h)).json()
    assert model["server"] == "/user/alice/"
    srv = model["servers"][""]
    assert srv["ready"] is True and srv["pending"] is None and srv["url"] == "/user/alice/"
    assert srv["progress_url"] == "/hub/api/users/alice/server/progress"
    assert (await client.post("/hub/api/users/alice/server", headers=h)).status_code == 400
    # progress of a ready server: exactly one ready event
    r = await client.get("/hub/api/users/alice/server/progress", headers=h)
    assert r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert len(evs) == 1 and evs[0]["ready"] is True and evs[0]["url"] == "/user/alice/"
    r = await client.get("/hub/api/users/alice/server", headers=h)
    assert r.status_code == 200 and r.json()["ready"] is True
    assert (await client.delete("/hub/api/users/alice/server", headers=h)).status_code == 204
    model = (await client.get("/hub/api/users/alice", headers=h)).json()
    assert model["servers"] == {} and model["server"] is None
    assert (await client.delete("/hub/api/users/alice/server", headers=h)).status_code == 204
    r = await client.request("DELETE", "/hub/api/users/alice/server", json={"remove": True}, headers=h)
    assert r.status_code == 400


async def test_named_servers_with_options(client, admin_headers):
    h = admin_headers
    await client.post("/hub/api/users/alice", headers=h)
    body = {"user_options": {"behaviour": "ok"}, "display_name": "Notebook 1"}
    r = await client.post("/hub/api/users/alice/servers/nb1", json=body, headers=h)
    assert r.status_code == 201, r.text
    srv = (await client.get("/hub/api/users/alice/servers/nb1", headers=h)).json()
    assert srv["name"] == "nb1" and srv["full_name"] == "alice/nb1" and srv["url"] == "/user/alice/nb1/"
    assert srv["user_options"] == {"behaviour": "ok"} and srv["display_name"] == "Notebook 1"
    r = await client.request("DELETE", "/hub/api/users/alice/servers/nb1", json={"remove": True}, headers=h)
    assert r.status_code == 204
    assert (await client.get("/hub/api/users/alice/servers/nb1", headers=h)).status_code == 404
    assert (await client.delete("/hub/api/users/alice/servers/nope", headers=h)).status_code == 404
    # PUT creates without starting
    r = await client.put("/hub/api/users/alice/servers/later", json={"display_name": "Later"}, headers=h)
    assert r.status_code == 201 and r.json()["stopped"] is True
    assert (await client.put("/hub/api/users/alice/servers/later", headers=h)).status_code == 409
    r = await client.patch("/hub/api/users/alice/servers/later", json={"name": "renamed"}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "renamed"


@pytest.mark.parametrize("server", ["..", "a b", "x" * 300, "tab\t", ".dot"])
async def test_hostile_server_names(client, admin_headers, server):
    from urllib.parse import quote

    h = admin_headers
    await client.post("/hub/api/users/alice", headers=h)
    r = await client.post(f"/hub/api/users/alice/servers/{quote(server, safe='')}", headers=h)
    assert 400 <= r.status_code < 500, (server, r.status_code)
    model = (await client.get("/hub/api/users/alice?include_stopped_servers=1", headers=h)).json()
    assert model["servers"] == {}


async def test_failed_spawn_reports_reason(client, admin_headers):
    h = admin_headers
    await client.post("/hub/api/users/alice", headers=h)
    r = await client.post("/hub/api/users/alice/server", json={"behaviour": "raise"}, headers=h)
    assert r.status_code == 500
    assert "Spawn failed" in r.json()["message"]
    r = await client.get("/hub/api/users/alice/server/progress", headers=h)
    evs = events(r.text)
    assert evs[-1]["failed"] is True and evs[-1]["message"].startswith("Spawn failed")
    assert evs[-1].get("reason_code") == "test-failure"


async def test_user_token_controls_own_server_only(client, make_token):
    alice = {"Authorization": f"token {await make_token('alice')}"}
    await make_token("bob")
    assert (await client.post("/hub/api/users/alice/server", headers=alice)).status_code == 201
    assert (await client.post("/hub/api/users/bob/server", headers=alice)).status_code == 404
    assert (await client.delete("/hub/api/users/alice/server", headers=alice)).status_code == 204
