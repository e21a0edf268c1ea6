"""``POST /hub/api/shutdown`` against a real hub process (``hubkit -f``, hubkit-proxy, the local spawner and real
JupyterLab servers): refused without the ``shutdown`` scope or the XSRF token, otherwise 202 and a clean exit
(status 0) that leaves user servers and the proxy running unless the request asks for them to stop."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def proxy_pid(hub: Any) -> int:
    return int((hub.data_dir / "hubkit-proxy.pid").read_text().split()[0])


def token_with(hub: Any, scopes: list[str], user: str = "admin") -> str:
    with hub.admin as api:
        r = api.post(f"/users/{user}/tokens", json={"scopes": scopes, "note": "shutdown test"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


def browser_session(hub: Any, user: str) -> tuple[httpx.Client, str]:
    """A cookie-authenticated client, logged in through the form like a browser; returns it and its XSRF token."""
    c = httpx.Client(base_url=hub.url, timeout=30)
    page = c.get("/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post(
        "/hub/login",
        data={"username": user, "password": "", "_xsrf": xsrf},
        headers={"Origin": hub.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 302, r.text
    return c, xsrf


def test_refused_then_shutdown_keeps_servers_and_proxy_unless_asked(make_hub: Any) -> None:
    hub = make_hub()
    hub.start()
    hub.start_server("alice")
    server_pid = hub.spawner_pids()["alice/"]["pid"]
    url = f"{hub.url}/hub/api/shutdown"
    refused = [
        {},
        {"Authorization": f"token {token_with(hub, ['inherit'], 'alice')}"},  # not an admin
        {"Authorization": f"token {token_with(hub, ['read:hub', 'admin:users'])}"},  # an admin's, no scope
    ]
    for headers in refused:
        r = httpx.post(url, headers=headers, timeout=30)
        assert r.status_code == 403, (headers, r.text)
    only_shutdown = {"Authorization": f"token {token_with(hub, ['shutdown'])}"}
    for body in ({"servers": "true"}, {"proxy": None}, {"now": True}):
        r = httpx.post(url, headers=only_shutdown, json=body, timeout=30)
        assert r.status_code == 400 and r.json()["status"] == 400, r.text
    # an admin's browser session: the cookie alone is not enough, the XSRF token must come too
    c, xsrf = browser_session(hub, "admin")
    try:
        same = {"Origin": hub.url, "Sec-Fetch-Site": "same-origin"}
        assert c.get("/hub/api/user", headers=same).json()["name"] == "admin"  # the session works
        assert c.post("/hub/api/shutdown", headers=same).status_code == 403
        assert c.post("/hub/api/shutdown", headers={**same, "X-XSRFToken": "0" * 64}).status_code == 403
        cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "X-XSRFToken": xsrf}
        assert c.post("/hub/api/shutdown", headers=cross).status_code == 403
    finally:
        c.close()
    assert hub.proc.poll() is None and httpx.get(f"{hub.url}/hub/api", timeout=10).status_code == 200

    # no flags: the hub alone ends; the proxy keeps serving alice's server without it
    r = httpx.post(url, headers=only_shutdown, timeout=30)
    assert r.status_code == 202 and r.json() == {"message": "Shutting down Hub"}
    assert hub.proc.wait(30) == 0, hub.log()[-3000:]
    assert "shutdown requested through the API (servers: keep, proxy: keep)" in hub.log()
    proxy = proxy_pid(hub)
    assert alive(server_pid) and alive(proxy)
    r = httpx.get(f"{hub.url}/user/alice/api", timeout=30)
    assert r.status_code == 200 and "version" in r.json()

    # a restarted hub finds everything as it was; asked to, it takes the servers and the proxy along
    hub.start()
    assert hub.wait_server("alice", ready=True, timeout=30)["url"] == "/user/alice/"
    assert hub.spawner_pids()["alice/"]["pid"] == server_pid and proxy_pid(hub) == proxy
    with hub.admin as api:
        r = api.post("/shutdown", json={"servers": True, "proxy": True})
    assert r.status_code == 202 and r.json() == {"message": "Shutting down Hub"}
    assert hub.proc.wait(60) == 0, hub.log()[-3000:]
    assert wait_gone(server_pid, 5) and wait_gone(proxy, 5)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{hub.url}/hub/api", timeout=5)
    db = sqlite3.connect(f"file:{hub.data_dir / 'hubkit.sqlite'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT status FROM servers").fetchall() == [("stopped",)]
    finally:
        db.close()
    assert "stopped 1 user server(s) with the hub" in hub.log() and "stopped the proxy" in hub.log()
