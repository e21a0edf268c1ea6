"""A web service of one's own, run by the hub from config, routed at ``/services/greeter/`` by hubkit-proxy, that
logs users in with JupyterHub's own ``HubOAuthenticated`` (the ``jupyterhub`` package from PyPI): a browser
(httpx with a cookie jar, following redirects) goes service -> hub authorize -> hub login -> consent -> the
service's callback -> greeted. A user the service's access policy leaves out is refused at the hub."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hubkit.testing import require
from hubkit.testing.processes import quiet_port
from svchub import services_log_lines, wait_for

pytestmark = pytest.mark.timeout(180)
GREETER = Path(__file__).with_name("greeter.py")


def xsrf_of(html: str) -> str:
    m = re.search(r'name="_xsrf" value="(\w+)"', html)
    assert m, html[:2000]
    return m.group(1)


def log_in(browser: httpx.Client, page: httpx.Response, name: str) -> httpx.Response:
    """Submit the hub's login form the browser was sent to."""
    assert urlsplit(str(page.url)).path == "/hub/login", page.url
    return browser.post(str(page.url), data={"username": name, "password": "", "_xsrf": xsrf_of(page.text)})


def test_greeter_logs_users_in_through_the_hub(make_hub):
    try:
        import jupyterhub.services.auth  # noqa: F401
    except ImportError:
        require(False, "the jupyterhub package is not installed in the test environment")
    port = quiet_port()  # the hub writes the greeter's url down before it runs; it cannot report a port
    hub = make_hub(
        f"""
[[services]]
name = "greeter"
url = "http://127.0.0.1:{port}"
command = ["{sys.executable}", "{GREETER}"]
access_users = ["alice"]
"""
    )
    hub.start()
    hub.running_pid("greeter")
    wait_for(
        lambda: any("greeter listening" in line for line in services_log_lines(hub.log(), "greeter")),
        30,
        "greeter listening",
        hub.log,
    )
    model = hub.service("greeter")
    assert model["url"] == f"http://127.0.0.1:{port}" and model["prefix"] == "/services/greeter/"
    with hub.admin() as api:
        routes = wait_for(
            lambda: "/services/greeter/" in (r := api.get("/proxy").json()) and r, 15, "route", hub.log
        )
    assert routes["/services/greeter/"]["target"] == f"http://127.0.0.1:{port}"
    assert routes["/services/greeter/"]["data"]["service"] == "greeter"

    with httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30) as alice:
        # not logged in: the service sends the browser to the hub, which asks for a login
        page = alice.get("/services/greeter/")
        hops = [urlsplit(str(r.url)).path for r in page.history]
        assert hops == ["/services/greeter/", "/hub/api/oauth2/authorize"], hops
        authorize = parse_qs(urlsplit(str(page.history[1].url)).query)
        assert authorize["client_id"] == ["service-greeter"]
        assert authorize["redirect_uri"] == ["/services/greeter/oauth_callback"]
        assert authorize["code_challenge_method"] == ["S256"]
        # logged in, the hub asks alice whether the service may know who she is (no oauth_no_confirm)
        consent = log_in(alice, page, "alice")
        assert consent.status_code == 200 and 'id="authorize"' in consent.text, consent.text[:1000]
        assert "JupyterHub service greeter" in consent.text
        greeted = alice.post(str(consent.url), data={"_xsrf": xsrf_of(consent.text)})
        assert greeted.status_code == 200, greeted.text
        assert greeted.text.strip() == "Hello, alice! (kind=user)"
        assert [urlsplit(str(r.url)).path for r in greeted.history] == [
            "/hub/api/oauth2/authorize",
            "/services/greeter/oauth_callback",
        ]
        assert "service-greeter" in alice.cookies  # HubOAuth's own cookie, holding alice's token
        # and from now on, straight to the greeting
        again = alice.get("/services/greeter/")
        assert again.history == [] and again.text.startswith("Hello, alice!")

    with httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30) as bob:
        refused = log_in(bob, bob.get("/services/greeter/"), "bob")
        assert refused.status_code == 403
        assert urlsplit(str(refused.url)).path == "/hub/api/oauth2/authorize"
        assert "You do not have permission to access JupyterHub service greeter" in refused.text
        assert "service-greeter" not in bob.cookies
