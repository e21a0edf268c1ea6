"""The REST API of section D2, run against hubkit-proxy AND a real CHP: same calls, same answers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import ProxyProc

pytestmark = pytest.mark.timeout(60)
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def api(p: ProxyProc, method: str, path: str, **kw: object) -> httpx.Response:
    headers = kw.pop("headers", p.auth)
    return httpx.request(method, p.api_url + path, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


def test_add_get_delete_cycle(proxy: ProxyProc) -> None:
    r = api(
        proxy,
        "POST",
        "/api/routes/user/alice",
        json={"target": "http://127.0.0.1:9", "user": "alice", "jupyterhub": True},
    )
    assert r.status_code == 201
    assert r.content == b""
    routes = api(proxy, "GET", "/api/routes")
    assert routes.status_code == 200
    assert routes.headers["content-type"].startswith("application/json")
    alice = routes.json()["/user/alice"]
    assert alice["target"] == "http://127.0.0.1:9"
    assert alice["user"] == "alice" and alice["jupyterhub"] is True
    assert ISO_MS.match(alice["last_activity"])
    single = api(proxy, "GET", "/api/routes/user/alice")
    assert single.status_code == 200 and single.json()["user"] == "alice"
    assert api(proxy, "DELETE", "/api/routes/user/alice").status_code == 204
    assert api(proxy, "DELETE", "/api/routes/user/alice").status_code == 404
    assert api(proxy, "GET", "/api/routes/user/alice").status_code == 404
    assert "/user/alice" not in api(proxy, "GET", "/api/routes").json()


def test_key_normalisation_and_replace(proxy: ProxyProc) -> None:
    assert (
        api(proxy, "POST", "/api/routes/user/bob/", json={"target": "http://127.0.0.1:9", "a": 1}).status_code
        == 201
    )
    assert (
        api(proxy, "POST", "/api/routes/user/bob", json={"target": "http://127.0.0.1:10"}).status_code == 201
    )
    routes = api(proxy, "GET", "/api/routes").json()
    assert "/user/bob/" not in routes
    assert routes["/user/bob"]["target"] == "http://127.0.0.1:10"
    assert "a" not in routes["/user/bob"]  # re-POST replaces the whole data object
    # URI-decoded path segments
    assert (
        api(proxy, "POST", "/api/routes/user/j%40x", json={"target": "http://127.0.0.1:9"}).status_code == 201
    )
    assert "/user/j@x" in api(proxy, "GET", "/api/routes").json()


@pytest.mark.parametrize(
    "header",
    ["Bearer {t}", "TOKEN {t}", "token wrong", "", "Token {t}"],
)
def test_refused_auth_forms(proxy: ProxyProc, header: str) -> None:
    headers = {"Authorization": header.format(t=proxy.token)} if header else {}
    r = api(proxy, "GET", "/api/routes", headers=headers)
    assert r.status_code == 403
    assert r.content == b""
    r = api(proxy, "POST", "/api/routes/x", headers=headers, json={"target": "http://127.0.0.1:9"})
    assert r.status_code == 403


def test_accepted_auth_forms(proxy: ProxyProc) -> None:
    for header in (f"token {proxy.token}", f"token   {proxy.token}", f"x token {proxy.token}"):
        assert api(proxy, "GET", "/api/routes", headers={"Authorization": header}).status_code == 200


def test_bad_bodies(proxy: ProxyProc) -> None:
    for body in (b"", b"{nope"):
        r = api(proxy, "POST", "/api/routes/x", content=body)
        assert r.status_code == 400
        assert r.text.startswith("Body not valid JSON")
    r = api(proxy, "POST", "/api/routes/x", json={"target": 5})
    assert (r.status_code, r.text) == (400, "Must specify 'target' as string")
    r = api(proxy, "POST", "/api/routes/x", json={"user": "a"})
    assert (r.status_code, r.text) == (400, "Must specify 'target' as string")
    assert "/x" not in api(proxy, "GET", "/api/routes").json()  # nothing half-added


def test_other_methods_and_paths(proxy: ProxyProc) -> None:
    r = api(proxy, "PUT", "/api/routes/x", json={"target": "http://127.0.0.1:9"})
    assert (r.status_code, r.text) == (405, "Method not supported")
    r = api(proxy, "GET", "/api/nothing")
    assert (r.status_code, r.text) == (404, "Not Found")


def test_inactive_since(proxy: ProxyProc) -> None:
    api(proxy, "POST", "/api/routes/old", json={"target": "http://127.0.0.1:9"})
    time.sleep(0.05)
    mid = datetime.now(UTC)
    time.sleep(0.05)
    api(proxy, "POST", "/api/routes/new", json={"target": "http://127.0.0.1:9"})
    stamp = mid.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for param in ("inactive_since", "inactiveSince"):
        got = api(proxy, "GET", f"/api/routes?{param}={stamp}").json()
        assert "/old" in got and "/new" not in got
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    got = api(proxy, "GET", "/api/routes", params={"inactive_since": future}).json()
    assert "/old" in got and "/new" in got
    r = api(proxy, "GET", "/api/routes?inactive_since=yesterday")
    assert (r.status_code, r.text) == (400, "Invalid datestamp 'yesterday' must be ISO8601.")


def test_healthz_on_public_port(proxy: ProxyProc) -> None:
    r = httpx.get(proxy.url + "/_chp_healthz", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "OK"}


def test_unknown_route_is_404(proxy: ProxyProc) -> None:
    assert httpx.get(proxy.url + "/nowhere", timeout=5).status_code == 404
