"""Per-user subdomains (``[hub] subdomain_host``) in the core: host names as JupyterHub makes them, host-based
routes, absolute server URLs, the single-user environment and OAuth client, the hub refusing to answer on users'
hosts, and the pages' policy for forms that end on a user's host. The browser end to end is tests/urls."""

from __future__ import annotations

import re

import httpx
import pytest
from hubkit.config.models import HubConfig
from hubkit.spawn.env import build_env
from hubkit.storage.orm import OAuthClient
from hubkit.testing import require
from hubkit.urls import HubUrls, dns_label
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
HUB = "https://hub.example:8443"
ALICE = "https://alice.hub.example:8443"
NAMES = [
    "alice",
    "bob-1",
    "Carol",
    "a--b",
    "ünïcode",
    "x" * 70,
    "123",
    "-x",
    "a.b",
    "a_b",
    "jean@x.org",
    "名字",
]


def test_user_hosts_are_jupyterhubs() -> None:
    """Users keep their addresses when a hub moves over (JupyterHub 5+'s default ``idna`` hook); only case
    differs, host names being case-insensitive."""
    try:
        from jupyterhub.utils import subdomain_hook_idna
    except ImportError:
        require(False, "jupyterhub (6.1.1) is not installed")
        raise
    for name in NAMES:
        theirs = subdomain_hook_idna(name, "hub.example", "user")
        assert f"{dns_label(name)}.hub.example" == theirs.lower(), name
        assert len(dns_label(name)) <= 63 and dns_label(name).isascii()


@pytest.mark.parametrize(
    "bad",
    ["hub.example", "ftp://hub.example", "https://hub.example/jh", "https://10.0.0.1", "https://[::1]:8000"],
)
def test_subdomain_host_must_be_a_named_origin(bad: str) -> None:
    with pytest.raises(ValueError, match="subdomain_host"):
        HubConfig(subdomain_host=bad)
    assert HubConfig(subdomain_host="HTTPS://Hub.Example:8443/").subdomain_host == "https://hub.example:8443"


def test_single_user_environment_and_urls() -> None:
    urls = HubUrls.build("/", "http://127.0.0.1:8081", subdomain_host=HUB)
    env = build_env(urls, "alice", "nb1", "t0ken")
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/nb1/"  # paths are unchanged
    assert env["JUPYTERHUB_HOST"] == HUB  # where the server sends browsers to log in
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == f"{ALICE}/user/alice/nb1/oauth_callback"
    assert env["JUPYTERHUB_PUBLIC_URL"] == f"{ALICE}/user/alice/nb1/"
    assert env["JUPYTERHUB_PUBLIC_HUB_URL"] == f"{HUB}/hub/"
    assert urls.routespec("alice", "nb1") == "alice.hub.example/user/alice/nb1/"  # no port: CHP's form
    plain = build_env(HubUrls.build("/", "http://127.0.0.1:8081"), "alice", "", "t0ken")
    assert (
        plain["JUPYTERHUB_HOST"] == ""
        and plain["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"
    )


@pytest.fixture
def hub_settings(tmp_path):
    from hubkit.testing.plugin import make_settings

    return make_settings(tmp_path / "hub", hub={"subdomain_host": HUB})


@pytest.fixture
async def client(app):
    """A browser on the hub's host (https: the hub's cookies are Secure)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=HUB) as c:
        yield c


async def log_in(client, name: str) -> list[str]:
    """A form login on the hub's host; the Set-Cookie headers it answered with."""
    page = await client.get("/hub/login")
    xsrf = re.search(r'name="_xsrf" value="(\w+)"', page.text).group(1)
    r = await client.post(
        "/hub/login",
        data={"username": name, "password": "", "_xsrf": xsrf},
        headers={"Origin": HUB, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 302, r.text
    return r.headers.get_list("set-cookie")


async def test_servers_live_on_their_owners_host(client, hub, admin_headers):
    await client.post("/hub/api/users/alice", headers=admin_headers)
    assert (await client.post("/hub/api/users/alice/server", headers=admin_headers)).status_code == 201
    assert set(await hub.proxy.get_routes()) == {"alice.hub.example/user/alice/"}
    model = (await client.get("/hub/api/users/alice", headers=admin_headers)).json()
    assert model["server"] == f"{ALICE}/user/alice/"
    assert model["servers"][""]["url"] == model["servers"][""]["full_url"] == f"{ALICE}/user/alice/"
    async with hub.db() as s:
        registered = (await s.execute(select(OAuthClient.redirect_uri))).scalars().all()
    assert registered == [f"{ALICE}/user/alice/oauth_callback"]  # OAuth across hosts

    await log_in(client, "alice")
    hub_host: dict[str, str] = {}
    r = await client.get("/hub/user-redirect/lab/tree/x.ipynb", headers=hub_host)
    assert r.status_code == 302 and r.headers["location"] == f"{ALICE}/user/alice/lab/tree/x.ipynb"
    r = await client.get("/hub/user/alice/lab", headers=hub_host)
    assert r.status_code == 302 and r.headers["location"] == f"{ALICE}/user/alice/lab?redirects=1"
    r = await client.get("/hub/spawn/alice", headers=hub_host)
    assert r.status_code == 302 and r.headers["location"] == f"{ALICE}/user/alice/"
    progress = await client.get("/hub/api/users/alice/server/progress", headers=admin_headers)
    assert f'"url": "{ALICE}/user/alice/"' in progress.text

    assert (await client.delete("/hub/api/users/alice/server", headers=admin_headers)).status_code == 204
    assert await hub.proxy.get_routes() == {}


async def test_hub_never_answers_on_a_users_host(client):
    for path, target in (
        ("/user/alice/lab?x=1", f"{HUB}/hub/user/alice/lab?x=1"),
        ("/hub/login?next=%2Fhub%2Fhome", f"{HUB}/hub/login?next=%2Fhub%2Fhome"),
        ("/hub/api/user", f"{HUB}/hub/api/user"),
    ):
        r = await client.get(path, headers={"Host": "alice.hub.example:8443"})
        assert r.status_code == 302 and r.headers["location"] == target, path
        assert "set-cookie" not in r.headers
    # the hub's own host, and the addresses servers and the proxy use, are served as usual
    for host in ("hub.example:8443", "127.0.0.1:8081"):
        page = await client.get("/hub/login", headers={"Host": host})
        assert page.status_code == 200, host
        # a login form ends on a user's host when it serves a server's OAuth: the policy lets it
        csp = page.headers["content-security-policy"]
        assert "form-action 'self' https://*.hub.example:8443" in csp
        assert "hubkit-session" not in page.headers.get("set-cookie", "")


async def test_login_cookies_stay_on_the_hubs_host(client):
    cookies = await log_in(client, "alice")
    assert any(c.startswith("hubkit-session=") for c in cookies)
    for cookie in cookies:
        assert "domain=" not in cookie.lower(), cookie  # host-only: never sent to users' hosts
        assert "Secure" in cookie, cookie  # the hub's origin is https


async def test_services_get_their_own_host(hub_factory, tmp_path):
    """Hub services with a URL move to ``<name>--service.<hub host>`` as in JupyterHub: route, OAuth callback,
    environment and the home page's link."""
    from hubkit.hubservices.env import build_env as service_env
    from hubkit.runtime.app import create_app
    from hubkit.testing.plugin import make_settings

    greeter = {
        "name": "greeter",
        "url": "http://127.0.0.1:9",
        "api_token": "greeter-token-0123456789",
        "access_all_users": True,
    }
    settings = make_settings(tmp_path / "hub", hub={"subdomain_host": HUB}, services=[greeter])
    hub = await hub_factory(settings)
    await hub.routes.reconcile()
    assert "greeter--service.hub.example/services/greeter/" in await hub.proxy.get_routes()
    origin = "https://greeter--service.hub.example:8443"
    async with hub.db() as s:
        callbacks = (await s.execute(select(OAuthClient.redirect_uri))).scalars().all()
    assert callbacks == [f"{origin}/services/greeter/oauth_callback"]
    env = service_env(settings.services[0], token="t", api_url="http://127.0.0.1:8081/hub/api", urls=hub.urls)
    assert env["JUPYTERHUB_HOST"] == HUB and env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/greeter/"
    assert env["JUPYTERHUB_PUBLIC_URL"] == f"{origin}/services/greeter/"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == f"{origin}/services/greeter/oauth_callback"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub)), base_url=HUB) as c:
        await log_in(c, "alice")
        assert f'href="{origin}/services/greeter/"' in (await c.get("/hub/home")).text
