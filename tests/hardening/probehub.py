"""Small helpers shared by the probe-finding tests (on top of ``hardhub``)."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hardhub
import httpx
from hardhub import HardHub


def mint(hub: HardHub, token: str, owner: str, **body: Any) -> dict[str, Any]:
    r = hub.api("POST", f"/users/{owner}/tokens", token, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def page_xsrf(client: httpx.Client) -> str:
    """The XSRF value of a page's form; the client keeps the anchor cookie that goes with it. Anyone can get
    a pair (the login page is public), so it is no barrier to a caller that already holds a token."""
    page = client.get("/hub/login")
    m = re.search(r'name="_xsrf" value="([0-9a-f]+)"', page.text)
    assert m, page.text[:300]
    return m.group(1)


def user_model(hub: HardHub, boss: str, name: str) -> dict[str, Any]:
    r = hub.api("GET", f"/users/{name}", boss)
    assert r.status_code == 200, r.text
    return dict(r.json())


def token_ids(hub: HardHub, boss: str, name: str) -> set[str]:
    r = hub.api("GET", f"/users/{name}/tokens", boss)
    assert r.status_code == 200, r.text
    return {t["id"] for t in r.json()["api_tokens"]}


@contextmanager
def plugins(allowed: str) -> Iterator[None]:
    """Let the hub and CLI processes started inside load ``allowed`` entry-point plugins (``HUBKIT_PLUGINS``)."""
    saved = dict(hardhub.HUB_ENV)
    hardhub.HUB_ENV["HUBKIT_PLUGINS"] = allowed
    try:
        yield
    finally:
        hardhub.HUB_ENV.clear()
        hardhub.HUB_ENV.update(saved)


def kill_servers(hub: HardHub) -> None:
    """Stop the user servers this hub started as processes (by design they outlive the hub): every process
    whose ``JUPYTERHUB_API_URL`` points at this hub's port, by PID."""
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.hub_port}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) for item in environ.split(b"\0")):
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except OSError:
                pass
