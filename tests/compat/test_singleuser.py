"""E2, E3, E5, E6 with the stock ``jupyterhub-singleuser`` (JupyterHub 6.1.1 from PyPI), unmodified, behind
hubkit-proxy: spawn environment, startup probe + activity, token identity, and the browser OAuth round trip
that lets the owner in and keeps others out."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from hubkit.testing import require

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]
SINGLEUSER = shutil.which("jupyterhub-singleuser", path=str(Path(sys.executable).parent))
REQUIRED = [
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_OAUTH_CALLBACK_URL",
    "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
    "JUPYTERHUB_SERVER_NAME",
]


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


async def browser_to_file(public: str, user: str, url: str) -> httpx.Response:
    """Follow the OAuth dance by hand like a browser (cookie jar, no auto-redirects); returns the last response."""
    async with httpx.AsyncClient(base_url=public, timeout=60, follow_redirects=False) as b:
        r = await b.get(url)
        assert r.status_code == 302, r.text[:300]
        authorize = r.headers["location"]
        assert authorize.startswith(
            "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri=%2Fuser%2Falice%2Foauth_callback"
        )
        assert "code_challenge_method=S256" in authorize
        r = await b.get(authorize)
        assert r.status_code == 302 and r.headers["location"].startswith("/hub/login?next=")
        login_url = r.headers["location"]
        page = await b.get(login_url)
        xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
        r = await b.post(
            login_url,
            data={"username": user, "password": "", "_xsrf": xsrf},
            headers={"Origin": public, "Sec-Fetch-Site": "same-origin"},
        )
        assert r.status_code == 302 and r.headers["location"] == authorize
        r = await b.get(authorize)
        if r.status_code != 302:
            return r
        callback = r.headers["location"]
        assert callback.startswith("/user/alice/oauth_callback?code=")
        r = await b.get(callback)
        assert r.status_code == 302, r.text[:300]
        assert any(c.startswith("jupyterhub-user-alice=") for c in r.headers.get_list("set-cookie"))
        return await b.get(urljoin(public, r.headers["location"]))


async def test_stock_singleuser_against_hubkit(live_hub_factory):
    require(SINGLEUSER is not None, "jupyterhub-singleuser (jupyterhub==6.1.1) is not installed")
    cmd = ["/bin/sh", "-c", f'env > "$COMPAT_DUMP"; exec {SINGLEUSER} --allow-root']
    live = await live_hub_factory(proxy=True, spawner="compat-local", cmd=cmd)
    adm = {"Authorization": f"token {live.admin_token}"}
    async with httpx.AsyncClient(timeout=120) as c:
        r = await c.post(f"{live.api}/users", json={"usernames": ["alice", "bob"]}, headers=adm)
        assert r.status_code == 201
        r = await c.post(f"{live.api}/users/alice/server", headers=adm)
        assert r.status_code in (201, 202), r.text
        events = []
        async with c.stream("GET", f"{live.api}/users/alice/server/progress", headers=adm) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        home = live.data_dir / "home" / "alice"
        assert events[-1].get("ready"), (events, (home / "server-default.log").read_text()[-3000:])

        # E2: the spawn environment contract
        env = read_env(home / "env-default.txt")
        for var in REQUIRED:
            assert var in env, var
        assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-alice"
        assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"
        assert "access:servers!server=alice/" in json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"])
        assert env["JUPYTERHUB_SERVICE_URL"].endswith("/user/alice/")
        assert env["JUPYTERHUB_API_URL"] == live.api

        # E3: it probed the hub, came up, and reports activity with its token
        for _ in range(150):
            model = (await c.get(f"{live.api}/users/alice", headers=adm)).json()
            if model["servers"][""]["last_activity"] and model["last_activity"]:
                break
            await asyncio.sleep(0.2)
        assert model["last_activity"], "no activity post from the singleuser"
        r = await c.get(f"{live.public}/user/alice/api")
        assert r.status_code == 200 and r.headers.get("x-jupyterhub-version") == "6.1.1"

        # E5: token identity, and the singleuser asks the hub about tokens
        token = env["JUPYTERHUB_API_TOKEN"]
        for scheme in ("token", "Bearer"):
            me = await c.get(f"{live.api}/user", headers={"Authorization": f"{scheme} {token}"})
            assert me.status_code == 200
            assert me.json()["name"] == "alice" and me.json()["kind"] == "user"
            assert "access:servers!server=alice/" in me.json()["scopes"]
        assert (
            await c.get(f"{live.api}/user", headers={"Authorization": "token garbage"})
        ).status_code == 403
        r = await c.get(f"{live.public}/user/alice/api/contents", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200, r.text[:300]
        bob = await live.token("bob", ["inherit"])
        r = await c.get(f"{live.public}/user/alice/api/contents", headers={"Authorization": f"token {bob}"})
        assert r.status_code == 403

    # E6: the browser OAuth round trip: alice gets her file, bob is refused at the hub's authorize step
    r = await browser_to_file(live.public, "alice", "/user/alice/files/x.txt")
    assert r.status_code == 200 and "hello from alice's server" in r.text
    r = await browser_to_file(live.public, "bob", "/user/alice/files/x.txt")
    assert r.status_code == 403 and "do not have permission" in r.text
