"""Services from ``[[services]]`` through the real app: their tokens and scopes, JupyterHub's service models,
logging users in through the hub's OAuth provider (access policy, consent), and a restart with another config."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from hubkit.runtime.app import create_app
from hubkit.storage.orm import APIToken, OAuthClient, Service, User
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

BASE = "http://127.0.0.1:8000"

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

EXT = "ext-token-0123456789"
GREET = "greeter-token-0123456789"
QUIET = "quiet-token-0123456789"
SERVICES: list[dict[str, Any]] = [
    {"name": "ext", "api_token": EXT, "scopes": ["list:users", "read:users:activity"], "info": {"k": "v"}},
    {
        "name": "greeter",
        "url": "http://127.0.0.1:9",
        "api_token": GREET,
        "access_users": ["alice"],
        "access_groups": ["staff"],
    },
    {
        "name": "quiet",
        "url": "http://127.0.0.1:10",
        "api_token": QUIET,
        "access_all_users": True,
        "oauth_no_confirm": True,
    },
]


@pytest.fixture
def hub_settings(tmp_path):
    return make_settings(tmp_path / "hub", services=SERVICES)


def xsrf_of(html: str) -> str:
    m = re.search(r'name="_xsrf" value="(\w+)"', html)
    assert m, "no _xsrf field on the page"
    return m.group(1)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def test_a_service_token_holds_exactly_its_scopes(client, admin_headers):
    assert (await client.post("/hub/api/users/alice", headers=admin_headers)).status_code == 201
    r = await client.get("/hub/api/users", headers=auth(EXT))
    assert r.status_code == 200 and [u["name"] for u in r.json()] == ["admin", "alice"]
    for method, path in (
        ("DELETE", "/hub/api/users/alice/server"),
        ("POST", "/hub/api/users/alice/server"),
        ("POST", "/hub/api/users/bob"),
        ("GET", "/hub/api/services"),
    ):
        r = await client.request(method, path, headers=auth(EXT))
        assert r.status_code == 403, (method, path, r.text)
    me = (await client.get("/hub/api/user", headers=auth(EXT))).json()
    assert me["kind"] == "service" and me["name"] == "ext"
    assert "list:users" in me["scopes"] and "delete:servers" not in me["scopes"]
    assert (await client.get("/hub/api/user", headers=auth(EXT + "x"))).status_code == 403


async def test_service_models_as_jupyterhub(client, admin_headers):
    r = await client.get("/hub/api/services", headers=admin_headers)
    assert r.status_code == 200
    models = r.json()
    assert list(models) == ["ext", "greeter", "quiet"]
    assert models["greeter"] == {
        "kind": "service",
        "name": "greeter",
        "admin": False,
        "roles": [],
        "url": "http://127.0.0.1:9",
        "prefix": "/services/greeter/",
        "command": [],
        "pid": 0,
        "info": {},
        "display": True,
    }
    assert models["ext"]["prefix"] == "" and models["ext"]["info"] == {"k": "v"}
    r = await client.get("/hub/api/services/greeter", headers=admin_headers)
    assert r.json() == models["greeter"]
    # only list:services: names, not addresses or commands
    assert (await client.get("/hub/api/services/nope", headers=admin_headers)).status_code == 404
    r = await client.delete("/hub/api/services/greeter", headers=admin_headers)
    assert r.status_code == 405 and "configuration" in r.json()["message"]


async def test_list_scope_shows_names_only(client, hub):
    async with hub.db() as s:
        row = Service(name="lister", scopes=["list:services"], process={})
        s.add(row)
        await s.flush()
        from hubkit.auth.tokens import issue_token

        secret, _ = await issue_token(s, service_id=row.id, scopes=["inherit"])
        await s.commit()
    r = await client.get("/hub/api/services", headers=auth(secret))
    assert r.status_code == 200
    assert r.json()["greeter"] == {"kind": "service", "name": "greeter", "admin": False}


def authorize_url(client_id: str, redirect: str, state: str = "st8") -> str:
    q = urlencode({"client_id": client_id, "redirect_uri": redirect, "response_type": "code", "state": state})
    return f"/hub/api/oauth2/authorize?{q}"


GREETER = authorize_url("service-greeter", "/services/greeter/oauth_callback")


async def _code_via_consent(client: httpx.AsyncClient) -> str:
    page = await client.get(GREETER)
    assert page.status_code == 200 and 'id="authorize"' in page.text, page.text[:500]
    assert "JupyterHub service greeter" in page.text
    r = await client.post(
        GREETER, data={"_xsrf": xsrf_of(page.text)}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 302, r.text
    loc = urlsplit(r.headers["location"])
    assert loc.path == "/services/greeter/oauth_callback"
    q = parse_qs(loc.query)
    assert q["state"] == ["st8"]
    return q["code"][0]


async def test_users_log_in_to_a_service_through_the_hub(client, hub, admin_headers, login):
    for name in ("alice", "bob", "carol"):
        await client.post(f"/hub/api/users/{name}", headers=admin_headers)
    r = await client.post("/hub/api/groups/staff", json={"users": ["carol"]}, headers=admin_headers)
    assert r.status_code == 201
    # alice is named in access_users: consent, then a code the service exchanges with its own token as secret
    await login("alice")
    code = await _code_via_consent(client)
    form = {
        "client_id": "service-greeter",
        "client_secret": GREET,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "/services/greeter/oauth_callback",
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub)), base_url=BASE) as svc:
        bad = await svc.post("/hub/api/oauth2/token", data={**form, "client_secret": QUIET})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        r = await svc.post("/hub/api/oauth2/token", data=form)
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = (await svc.get("/hub/api/user", headers=auth(token))).json()
    assert me["name"] == "alice" and me["kind"] == "user"
    assert "access:services!service=greeter" in me["scopes"]  # what HubOAuth checks
    assert "access:services!service=quiet" not in me["scopes"]
    # bob is not allowed: the hub says so and never redirects to the service
    await login("bob")
    r = await client.get(GREETER)
    assert (
        r.status_code == 403 and "You do not have permission to access JupyterHub service greeter" in r.text
    )
    # carol is, through her group; the admin is, through the admin role
    for who in ("carol", "admin"):
        await login(who)
        assert await _code_via_consent(client)
    # quiet: every user, without a consent page
    await login("bob")
    r = await client.get(authorize_url("service-quiet", "/services/quiet/oauth_callback"))
    assert r.status_code == 302 and "code=" in r.headers["location"]
    # a redirect URI that is not the registered one is refused at the hub
    r = await client.get(authorize_url("service-quiet", "https://evil.example/cb"))
    assert r.status_code == 400 and "location" not in r.headers


async def test_a_restart_with_another_config_replaces_what_changed(
    client, hub, hub_factory, admin_headers, tmp_path, login
):
    await client.post("/hub/api/users/alice", headers=admin_headers)
    await login("alice")
    assert await _code_via_consent(client)
    async with hub.db() as s:
        alice = (await s.execute(select(User).where(User.name == "alice"))).scalar_one()
        from hubkit.auth.tokens import issue_token

        await issue_token(
            s, user_id=alice.id, scopes=["inherit"], kind="oauth", oauth_client="service-greeter"
        )
        await s.commit()
    want, _ = await hub.routes.desired()
    assert want["/services/greeter/"].target == "http://127.0.0.1:9"
    assert want["/services/greeter/"].data["service"] == "greeter"
    assert "/services/ext/" not in want  # no url, no route
    await hub.routes.reconcile()
    assert set(hub.proxy.routes) == {"/services/greeter/", "/services/quiet/"}
    await hub.stop()
    # the same database, another config: greeter gone, ext with a new token and no scopes of its own
    new_token = "ext-token-rotated-42"
    settings = make_settings(
        tmp_path / "hub", services=[{"name": "ext", "api_token": new_token}, SERVICES[2]]
    )
    hub2 = await hub_factory(settings)
    async with hub2.db() as s:
        names = set((await s.execute(select(Service.name))).scalars())
        clients = set((await s.execute(select(OAuthClient.identifier))).scalars())
        leftover = (await s.execute(select(APIToken).where(APIToken.oauth_client == "service-greeter"))).all()
    assert names == {"ext", "quiet"} and "service-greeter" not in clients and "service-quiet" in clients
    assert leftover == []  # alice's login to greeter ended with it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hub2)), base_url=BASE) as c2:
        assert (await c2.get("/hub/api/user", headers=auth(EXT))).status_code == 403
        me = await c2.get("/hub/api/user", headers=auth(new_token))
        assert me.status_code == 200 and me.json()["name"] == "ext"
        assert (await c2.get("/hub/api/users", headers=auth(new_token))).status_code == 403
    await hub2.routes.reconcile()
    hub2.proxy.routes["/services/gone/"] = hub2.proxy.routes[
        "/services/quiet/"
    ]  # a route nobody wants any more
    stats = await hub2.routes.reconcile()
    assert stats.removed == 1 and set(hub2.proxy.routes) == {"/services/quiet/"}


async def test_the_home_page_lists_the_services_a_user_may_use(client, admin_headers, login):
    for name in ("alice", "bob"):
        await client.post(f"/hub/api/users/{name}", headers=admin_headers)
    await login("alice")
    home = (await client.get("/hub/home")).text
    assert re.findall(r'data-service="([^"]+)"', home) == ["greeter", "quiet"]
    assert 'href="/services/greeter/"' in home
    await login("bob")
    home = (await client.get("/hub/home")).text
    assert re.findall(r'data-service="([^"]+)"', home) == ["quiet"]  # ext has no url; greeter is not for bob


async def test_a_token_in_use_elsewhere_is_refused(hub, hub_factory, make_user, tmp_path):
    from hubkit.auth.tokens import issue_token
    from hubkit.errors import ConfigError

    await make_user("carol")
    async with hub.db() as s:
        carol = (await s.execute(select(User).where(User.name == "carol"))).scalar_one()
        await issue_token(s, user_id=carol.id, scopes=["inherit"], secret="carols-own-token-123")
        await s.commit()
    await hub.stop()
    settings = make_settings(
        tmp_path / "hub", services=[{"name": "thief", "api_token": "carols-own-token-123"}]
    )
    with pytest.raises(ConfigError, match=r"services\.0\.api_token: this token is already in use"):
        await hub_factory(settings)


@pytest.mark.parametrize(
    "url", ["f\u00a4\u0131", "127.0.0.1:8000", "ftp://127.0.0.1:21", "http://127.0.0.1:9/x"]
)
async def test_a_service_added_through_the_api_needs_a_routable_url(client, admin_headers, url):
    """Found by schemathesis: a url without a scheme was stored, and the route reconciler then failed on it every
    round. The API applies the config's rule."""
    r = await client.post("/hub/api/services/svcurl", json={"url": url}, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert "url" in r.json()["message"]
    assert (await client.get("/hub/api/services/svcurl", headers=admin_headers)).status_code == 404
    ok = await client.post(
        "/hub/api/services/svcurl", json={"url": "http://127.0.0.1:10101/"}, headers=admin_headers
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["url"] == "http://127.0.0.1:10101"
