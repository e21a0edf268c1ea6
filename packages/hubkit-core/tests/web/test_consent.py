"""An admin with access to someone else's server confirms once (consent form with XSRF); the owner never does."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hubkit.auth.tokens import hash_secret
from hubkit.storage.orm import OAuthClient
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
URL = "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri=%2Fuser%2Falice%2Foauth_callback&response_type=code&state=s1"


async def test_admin_consents_owner_does_not(client, hub, admin_headers, login):
    await client.post("/hub/api/users/alice", headers=admin_headers)
    assert (await client.post("/hub/api/users/alice/server", headers=admin_headers)).status_code == 201
    async with hub.db() as s:
        row = (
            await s.execute(select(OAuthClient).where(OAuthClient.identifier == "jupyterhub-user-alice"))
        ).scalar_one()
        row.secret_hash = hash_secret("x" * 32)
        await s.commit()
    await login("admin")
    page = await client.get(URL)
    assert page.status_code == 200 and 'id="authorize"' in page.text
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
    r = await client.post(URL, data={"_xsrf": "bad"}, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 403
    r = await client.post(URL, data={"_xsrf": xsrf}, headers={"Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["location"]).query)
    assert q["state"] == ["s1"] and q["code"]
    await login("alice")
    r = await client.get(URL)
    assert r.status_code == 302 and "code=" in r.headers["location"]
    # a scope outside what the client may grant goes back to the client as invalid_scope
    r = await client.get(URL + "&scope=admin%3Ausers")
    assert r.status_code == 302 and "error=invalid_scope" in r.headers["location"]
