"""examples/oauth-oidc and examples/oauth-github run as written (real ``hubkit -f`` process, hubkit-proxy,
JupyterLab): a person logs in at the provider and reaches JupyterLab at /user/<name>/lab through the proxy.

The OIDC example also carries the end-to-end checks of the OAuth hardening: hub logout reaches the user's
server within the documented window (docs/security.md, "Logout"), ``hubkit token`` works for users with
stored auth state, and the stock ``jupyterhub-idle-culler`` runs as docs/idle-culler.md says.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography.fernet import Fernet
from example_hub import ExampleHub
from hubkit.testing import require
from hubkit.testing.processes import bound_socket
from hubkit_singleuser.hubenv import DEFAULT_AUTH_CACHE_SECONDS
from oauth_helpers import CLIENT_ID, CLIENT_SECRET, RealOP, browse

sys.path.append(str(Path(__file__).resolve().parents[2] / "packages" / "hubkit-auth-oauth" / "tests"))
from oauth_fakes import CLIENT_ID as FAKE_CLIENT_ID
from oauth_fakes import CLIENT_SECRET as FAKE_CLIENT_SECRET
from oauth_fakes import FakeProvider, ServerThread

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

CULLER = shutil.which("jupyterhub-idle-culler", path=str(Path(sys.executable).parent))
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
LOGOUT_SLACK = 3.0  # seconds beyond the documented window: request round trips on a loaded machine


@pytest.fixture
def example_hubs(tmp_path: Path, hub_socket: socket.socket) -> Iterator[list[ExampleHub]]:
    # The provider knows the callback URL on hub_port, and here a separate process (the example's embedded
    # hubkit-proxy) must bind that port itself: the module's hold on it ends just before the hub starts.
    hub_socket.close()
    hubs: list[ExampleHub] = []
    yield hubs
    for hub in hubs:
        hub.stop()


async def reach_lab(browser: httpx.AsyncClient, hub: ExampleHub, user: str) -> httpx.Response:
    """What a browser does at /user/<name>/lab: proxy -> server -> hub OAuth -> back to JupyterLab."""
    page = await browse(browser, f"{hub.url}/user/{user}/lab", login=user)
    assert page.status_code == 200, f"{page.status_code} at {page.url}\n{hub.log()[-3000:]}"
    assert str(page.url) == f"{hub.url}/user/{user}/lab"
    assert "jupyter-config-data" in page.text and "JupyterLab" in page.text
    return page


async def test_oidc_example_lab_logout_token_and_culler(
    real_op: RealOP, hub_port: int, tmp_path: Path, example_hubs: list[ExampleHub]
) -> None:
    require(CULLER is not None, "jupyterhub-idle-culler is not installed")
    hub = ExampleHub(
        "oauth-oidc", tmp_path, hub_port,
        auth={"issuer": real_op.issuer, "client_id": CLIENT_ID},
        env={"HUBKIT_AUTH__OIDC__CLIENT_SECRET": CLIENT_SECRET, "HUBKIT_CRYPT_KEY": Fernet.generate_key().decode()},
        extra={"hub": {"admin_users": ["idle-culler"]}, "auth": {"blocked_users": ["idle-culler"]}},  # idle-culler.md
    )
    example_hubs.append(hub)
    await anyio.to_thread.run_sync(hub.start)
    async with httpx.AsyncClient(timeout=60) as alice, httpx.AsyncClient(timeout=60) as bob:
        for browser, who in ((alice, "alice"), (bob, "bob")):
            home = await browse(browser, f"{hub.url}/hub/oauth_login", login=who)
            assert home.status_code == 200 and str(home.url).startswith(f"{hub.url}/hub/")

        # `hubkit token` for a user with stored (encrypted) auth state: alice, an admin by her provider group
        admin = await anyio.to_thread.run_sync(hub.token, "alice")
        culler = await anyio.to_thread.run_sync(lambda: hub.token("idle-culler", *CULLER_SCOPES))
        await anyio.to_thread.run_sync(hub.start_server, admin, "bob")

        await reach_lab(bob, hub, "bob")
        status = f"{hub.url}/user/bob/api/status"
        assert (await bob.get(status)).status_code == 200  # the server's OAuth cookie

        # logout: the hub revokes that cookie's token; the server must refuse it within the window
        await browse(bob, f"{hub.url}/hub/logout", login="bob")
        logged_out = time.monotonic()
        window = DEFAULT_AUTH_CACHE_SECONDS + LOGOUT_SLACK
        while (await bob.get(status)).status_code == 200:
            assert time.monotonic() - logged_out < window, "the server still accepts the logged-out cookie"
            await asyncio.sleep(0.25)
        assert (await bob.get(status)).status_code == 403
        lab = await bob.get(f"{hub.url}/user/bob/lab")
        assert lab.status_code == 302 and "/user/bob/login" in lab.headers["location"]

    # the stock idle culler, as docs/idle-culler.md runs it, with the token `hubkit token` minted for the
    # account nobody can log in as
    async with httpx.AsyncClient() as client:  # even a provider account of that name in the admin group
        claims = {"preferred_username": "idle-culler", "email": "x@uni.example", "email_verified": True,
                  "groups": ["hub-admins"]}
        assert (await client.post(f"{real_op.issuer}/__test/accounts/idle-culler", json=claims)).status_code == 204
        page = await browse(client, f"{hub.url}/hub/oauth_login", login="idle-culler")
        assert page.status_code == 403 and "not allowed" in page.text
    await asyncio.sleep(1.5)  # idle for longer than --timeout
    log = await run_culler(hub.api, culler, "--timeout=1")
    headers = {"Authorization": f"token {admin}"}
    async with httpx.AsyncClient(base_url=hub.api, headers=headers) as api:
        for _ in range(100):
            if (await api.get("/users/bob")).json()["servers"] == {}:
                break
            await asyncio.sleep(0.2)
        assert (await api.get("/users/bob")).json()["servers"] == {}, log
    assert "Traceback" not in log, log


async def run_culler(api: str, token: str, *args: str) -> str:
    """One round of ``jupyterhub-idle-culler`` (it loops forever: stopped after its first round)."""
    assert CULLER is not None
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        CULLER, f"--url={api}", "--cull-every=600", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
    except TimeoutError:
        proc.terminate()
        out, _ = await proc.communicate()
    return out.decode(errors="replace")


GITHUB_USER = {"login": "Octo", "id": 1, "name": "Octo Cat", "email": None}
GITHUB_EMAILS = [{"email": "octo@example.org", "verified": True, "primary": True}]
GITHUB_ORGS = [{"login": "my-org", "id": 7}]
GITHUB_TEAMS = [{"slug": "hub-admins", "organization": {"login": "my-org"}}]


async def test_github_example_reaches_lab(hub_port: int, tmp_path: Path,
                                          example_hubs: list[ExampleHub]) -> None:
    """The GitHub preset against a local server answering as GitHub does (OAuth app + REST API)."""
    sock = bound_socket()  # the provider's server is handed the socket itself
    provider = FakeProvider(base=f"http://127.0.0.1:{sock.getsockname()[1]}")
    provider.github = {"/user": GITHUB_USER, "/user/emails": GITHUB_EMAILS, "/user/orgs": GITHUB_ORGS,
                       "/user/teams": GITHUB_TEAMS}
    provider.expires_in = 28800  # a GitHub App user token: it expires and comes with a refresh token
    with ServerThread(provider.app(), sock):
        hub = ExampleHub(
            "oauth-github", tmp_path, hub_port,
            auth={"client_id": FAKE_CLIENT_ID, "github_url": provider.base, "api_url": f"{provider.base}/api"},
            env={"HUBKIT_AUTH__GITHUB__CLIENT_SECRET": FAKE_CLIENT_SECRET,
                 "HUBKIT_CRYPT_KEY": Fernet.generate_key().decode()},
        )
        example_hubs.append(hub)
        await anyio.to_thread.run_sync(hub.start)
        async with httpx.AsyncClient(timeout=60) as browser:
            home = await browse(browser, f"{hub.url}/hub/oauth_login", login="octo")
            assert home.status_code == 200 and str(home.url).startswith(f"{hub.url}/hub/")
            token = await anyio.to_thread.run_sync(hub.token, "octo")  # admin: team my-org:hub-admins
            await anyio.to_thread.run_sync(hub.start_server, token, "octo")
            await reach_lab(browser, hub, "octo")
            async with httpx.AsyncClient(base_url=hub.api, headers={"Authorization": f"token {token}"}) as api:
                model: dict[str, Any] = (await api.get("/users/octo")).json()
                assert model["admin"] is True and sorted(model["groups"]) == ["my-org", "my-org:hub-admins"]
                assert (await api.delete("/users/octo/server")).status_code in (202, 204)
