"""Per-user subdomains ([hub] subdomain_host) end to end, in real headless Chromium on loopback names (Chromium
resolves ``*.localhost`` to loopback), through Debian's nginx running examples/vm/nginx-hubkit-subdomains.conf
with a wildcard certificate: a real hub, hubkit-proxy routing by host, and real Jupyter servers for alice and
bob, each on its owner's host. Alice logs in through her server's OAuth round trip across hosts; then her
server's page can read her own server but neither bob's server nor the hub's API, and cannot make the hub act
with her hub session (XSRF across hosts). Every hub cookie stays on the hub's host."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing.processes import quiet_port

sys.path.append(str(Path(__file__).parent))  # unique module names; never shadow others
import subdomain_nginx

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# Run in alice's page: what a script there gets from each address (status, or the error when the browser
# refuses to hand the response over).
PROBE = """
async ([url, init]) => {
  try {
    const r = await fetch(url, init);
    return r.type === "opaque" ? "opaque" : String(r.status);
  } catch (e) {
    return "refused: " + e.name;
  }
}
"""


def subdomain_hub(make_hub: Any, e2e_hub: Any, https_port: int) -> Any:
    hub = make_hub()
    hub.origin = f"https://hub.localhost:{https_port}"  # nginx in front, TLS with the wildcard certificate
    hub.config["hub"]["subdomain_host"] = hub.origin
    hub.config_path.write_text(e2e_hub.to_toml(hub.config))
    return hub


def check_certificate(port: int, name: str, cert: Path) -> None:
    """nginx serves the wildcard certificate, valid for ``name``."""
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            name,
            "-verify_hostname",
            name,
            "-CAfile",
            str(cert),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    assert "Verify return code: 0 (ok)" in out, out[-1500:]


def start_servers(hub: Any, *users: str) -> None:
    with hub.admin as api:
        for user in users:
            api.post(f"/users/{user}")
            assert api.post(f"/users/{user}/server").status_code in (201, 202)
    for user in users:
        hub.wait_server(user, ready=True, timeout=120)


def test_alice_page_cannot_reach_bob_or_the_hub(
    browser: Any, make_hub: Any, e2e_hub: Any, tmp_path: Path
) -> None:
    e2e_hub._require(Path(subdomain_nginx.NGINX).exists(), "nginx is not installed (apt-get install nginx)")
    e2e_hub._require(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = subdomain_nginx.wildcard_cert(tmp_path / "tls", "hub.localhost")
    stack = contextlib.ExitStack()
    for attempt in range(5):
        # nginx cannot report a port it chose, and the hub's subdomain_host must name its port before the hub
        # starts: ports below the ephemeral range, and everything again if another program took one
        http_port, https_port = quiet_port(), quiet_port()
        hub = subdomain_hub(make_hub, e2e_hub, https_port)
        for user in ("alice", "bob"):  # a file in each home ([spawner.local] home_dir)
            home = hub.data_dir / "users" / user
            home.mkdir(parents=True)
            (home / "note.txt").write_text(f"{user}'s note\n")
        hub.start()  # on port 0: hub.url is known from here on
        site = {
            "domain": "hub.localhost", "http_port": http_port, "https_port": https_port, "cert": cert, "key": key,
        }
        try:
            stack.enter_context(subdomain_nginx.serving(tmp_path / f"nginx{attempt}", upstream=hub.url, **site))
            break
        except subdomain_nginx.PortTaken:
            hub.cleanup()
    else:
        raise AssertionError("nginx found its ports taken five times")
    with stack:
        start_servers(hub, "alice", "bob")
        for name in ("hub.localhost", "alice.hub.localhost"):
            check_certificate(https_port, name, cert)
        r = httpx.get(f"http://127.0.0.1:{http_port}/user/alice/", headers={"Host": "alice.hub.localhost"})
        assert r.status_code == 301 and r.headers["location"] == "https://alice.hub.localhost/user/alice/"
        browse(browser, hub, https_port)


def browse(browser: Any, hub: Any, https_port: int) -> None:
    alice_host, bob_host = f"alice.hub.localhost:{https_port}", f"bob.hub.localhost:{https_port}"
    with hub.admin as api:
        routes = api.get("/proxy").json()
        servers = {u: api.get(f"/users/{u}").json()["servers"][""] for u in ("alice", "bob")}
    # host routes as JupyterHub writes them for CHP, and absolute server URLs in the REST API
    assert {"alice.hub.localhost/user/alice/", "bob.hub.localhost/user/bob/"} <= set(routes), routes
    assert servers["alice"]["url"] == f"https://{alice_host}/user/alice/"

    ctx = browser.new_context(ignore_https_errors=True)  # the test's own certificate (checked above)
    page = ctx.new_page()
    try:
        # alice opens her server (JupyterLab's page: its scripts are not needed here, so they are not loaded):
        # it sends her to the hub's host to log in, then back to her own host (OAuth across hosts)
        page.route(re.compile(r".*/static/.*"), lambda route: route.abort())
        page.goto(f"https://{alice_host}/user/alice/lab")
        assert page.url.startswith(f"{hub.origin}/hub/login?next="), page.url
        page.fill("#username", "alice")
        page.click("#login-submit")
        page.wait_for_url(f"https://{alice_host}/user/alice/lab", timeout=60_000)
        assert page.evaluate("location.origin") == f"https://{alice_host}"

        cookies = {(c["name"], c["domain"]) for c in ctx.cookies()}
        hub_cookies = {n for n, d in cookies if n.startswith(("hubkit-", "jupyterhub-session"))}
        assert {"hubkit-session", "jupyterhub-session-id"} <= hub_cookies, cookies
        for name, domain in cookies:  # host-only cookies: the hub's on its host, alice's server's on hers
            assert not domain.startswith("."), (name, domain)
            expected = (
                alice_host.split(":")[0] if name.startswith("jupyterhub-user-alice") else "hub.localhost"
            )
            if name in hub_cookies or name.startswith("jupyterhub-user-alice"):
                assert domain == expected, (name, domain)

        def probe(url: str, **init: Any) -> str:
            return str(page.evaluate(PROBE, [url, {"credentials": "include", **init}]))

        # her own server, same origin: her cookie works
        assert probe(f"https://{alice_host}/user/alice/api/contents") == "200"
        assert page.evaluate("fetch('/user/alice/files/note.txt').then(r => r.text())") == "alice's note\n"
        # bob's server and the hub's API: the browser does not hand their answers to alice's page
        assert probe(f"https://{bob_host}/user/bob/files/note.txt").startswith("refused")
        assert probe(f"https://{bob_host}/user/bob/api/contents").startswith("refused")
        assert probe(f"{hub.origin}/hub/api/user").startswith("refused")
        # a request the browser does send (no-cors, same site, with her SameSite=Lax hub session): the hub's
        # XSRF rules refuse it, so no token is made for alice
        with hub.admin as api:
            tokens_before = {t["id"] for t in api.get("/users/alice/tokens").json()["api_tokens"]}
        with page.expect_request(lambda r: r.url.endswith("/tokens")) as forged:
            sent = probe(
                f"{hub.origin}/hub/api/users/alice/tokens",
                method="POST",
                mode="no-cors",
                body='{"note": "stolen"}',
                headers={"Content-Type": "text/plain"},
            )
        assert sent == "opaque"
        headers = forged.value.all_headers()
        assert "hubkit-session=" in headers.get("cookie", ""), headers  # her session went along
        assert headers.get("origin") == f"https://{alice_host}"  # refused for its Origin (and missing token)
        with hub.admin as api:
            assert {t["id"] for t in api.get("/users/alice/tokens").json()["api_tokens"]} == tokens_before
            # it did reach the hub, and was answered 403
            metrics = httpx.get(f"{hub.url}/hub/metrics", headers=api.headers, timeout=30).text
        assert re.search(
            r'hubkit_request_duration_seconds_count\{code="403",method="POST",'
            r'route="/hub/api/users/\{name\}/tokens"\} 1\.0',
            metrics,
        ), [line for line in metrics.splitlines() if "tokens" in line]

        # navigating to bob's server: its OAuth asks the hub, which refuses alice
        resp = page.goto(f"https://{bob_host}/user/bob/files/note.txt")
        assert (
            resp is not None and resp.status == 403 and page.url.startswith(f"{hub.origin}/hub/api/oauth2/")
        )
        # the hub never answers on a user's host: its pages move to the hub's host
        page.goto(f"https://{alice_host}/hub/home")
        assert page.url == f"{hub.origin}/hub/home", page.url
        assert re.search(r'id="who">alice<', page.content())
    finally:
        ctx.close()
