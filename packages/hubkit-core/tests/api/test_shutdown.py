"""``POST /hub/api/shutdown`` (JupyterHub's): the scope, XSRF and body rules, the 202 answer, and what the hub's
shutdown then stops. The real process exiting (and its proxy and Jupyter servers) is in tests/urls."""

from __future__ import annotations

import pytest
from hubkit.storage.access import Storage
from hubkit.storage.orm import Server, ServerStatus, User
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
URL = "/hub/api/shutdown"


async def test_admin_token_gets_202_and_the_request_reaches_the_runner(client, hub, admin_headers):
    r = await client.post(URL, headers=admin_headers)
    assert r.status_code == 202 and r.json() == {"message": "Shutting down Hub"}
    asked = hub.services.lifecycle
    assert asked.requested and (asked.stop_servers, asked.stop_proxy) == (False, False)
    # a second request may add what stops with the hub
    r = await client.post(URL, json={"servers": True, "proxy": True}, headers=admin_headers)
    assert r.status_code == 202 and (asked.stop_servers, asked.stop_proxy) == (True, True)


@pytest.mark.parametrize(
    "body",
    [{"servers": "yes"}, {"proxy": 1}, {"servers": None}, {"bogus": True}, [True], "not json"],
)
async def test_bad_bodies_are_400_and_nothing_happens(client, hub, admin_headers, body):
    if isinstance(body, str):
        r = await client.post(
            URL, content=body, headers={**admin_headers, "Content-Type": "application/json"}
        )
    else:
        r = await client.post(URL, json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400 and r.json()["message"]
    assert not hub.services.lifecycle.requested


async def test_scope_refusals(client, hub, make_token):
    user = {"Authorization": f"token {await make_token('alice')}"}
    narrow = {"Authorization": f"token {await make_token('admin', admin=True, scopes=['read:hub', 'proxy'])}"}
    for headers in ({}, user, narrow, {"Authorization": "token not-a-token"}):
        r = await client.post(URL, json={"servers": True}, headers=headers)
        assert r.status_code == 403, (headers, r.text)
    assert not hub.services.lifecycle.requested
    only = {"Authorization": f"token {await make_token('admin', scopes=['shutdown'])}"}
    assert (await client.post(URL, headers=only)).status_code == 202
    assert hub.services.lifecycle.requested


async def test_cookie_caller_needs_the_xsrf_token(client, hub, login, make_user):
    await make_user("boss", admin=True)
    xsrf = await login("boss")
    same = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    for headers in (
        same,
        {**same, "X-XSRFToken": "0" * 64},
        {"Sec-Fetch-Site": "cross-site", "X-XSRFToken": xsrf},
    ):
        assert (await client.post(URL, headers=headers)).status_code == 403
    assert not hub.services.lifecycle.requested
    assert (await client.post(URL, headers={**same, "X-XSRFToken": xsrf})).status_code == 202
    assert hub.services.lifecycle.requested


async def _statuses(settings, data_dir: str) -> dict[str, ServerStatus]:
    """Read the stopped hub's database afresh."""
    store = Storage.open(settings.hub.db_url, data_dir)
    try:
        async with store.session() as s:
            return {n: st for n, st in (await s.execute(select(Server.name, Server.status))).all()}
    finally:
        await store.dispose()


async def test_stop_keeps_servers_unless_asked(hub_factory, tmp_path):
    for stop_servers in (False, True):
        settings = make_settings(tmp_path / f"hub-{stop_servers}", hub={"allow_named_servers": True})
        hub = await hub_factory(settings)
        async with hub.db() as s:
            s.add(User(name="alice", cookie_id="c"))
            await s.commit()
        for name in ("", "nb1"):
            assert await hub.spawns.wait(await hub.spawns.request_start("alice", name), 10) == "ready"
        hub.services.lifecycle.request_exit(stop_servers=stop_servers)
        await hub.stop()
        expected = ServerStatus.STOPPED if stop_servers else ServerStatus.RUNNING
        assert await _statuses(settings, hub.info.data_dir) == {"": expected, "nb1": expected}
