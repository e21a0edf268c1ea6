"""What JupyterLab's page tells the browser when hubkit-singleuser serves it (a real LabApp with the extension)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakehub import FakeHub
from hubkit.testing import require
from su_harness import Server, launch, shutdown

pytestmark = pytest.mark.timeout(120)
CONFIG_DATA = re.compile(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S)


def lab_page(server: Server, fakehub: FakeHub) -> httpx.Response:
    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    r = httpx.get(server.url + "lab", headers={"Authorization": f"token {alice}"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r


def page_config(server: Server, fakehub: FakeHub, page: httpx.Response | None = None) -> dict[str, Any]:
    text = (page or lab_page(server, fakehub)).text
    found = CONFIG_DATA.search(text)
    assert found, text[:500]
    return dict(json.loads(found.group(1)))


def test_lab_is_not_asked_to_check_its_build(fakehub: FakeHub, tmp_path: Path) -> None:
    """A user's server is not where JupyterLab gets rebuilt: no build check (``GET /lab/api/build``, seconds of
    server CPU while Lab starts) and no build prompt."""
    require(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed")
    server = launch(fakehub, tmp_path, app="lab")
    try:
        cfg = page_config(server, fakehub)
        assert cfg["buildCheck"] is False
        assert cfg["buildAvailable"] is False
    finally:
        shutdown(server)


def test_a_configured_build_check_is_kept(fakehub: FakeHub, tmp_path: Path) -> None:
    """An operator who wants the check back says so in the server's config, and that wins."""
    require(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"tornado_settings": {"page_config_data": {"buildCheck": True}}}})
    )
    server = launch(fakehub, tmp_path, app="lab")
    try:
        cfg = page_config(server, fakehub)
        assert cfg["buildCheck"] is True
    finally:
        shutdown(server)


def test_the_servers_own_tornado_settings_keep_the_hub_integration(fakehub: FakeHub, tmp_path: Path) -> None:
    """A ``c.ServerApp.tornado_settings`` in the server's config (e.g. a Content-Security-Policy to allow
    embedding) adds to what hubkit-singleuser sets: LabApp applies that config again after the extension's link,
    and it used to replace all of it (no version header, no hub menu, a build prompt)."""
    require(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed")
    (tmp_path / "config").mkdir()
    csp = "frame-ancestors 'self' https://lms.example.org"
    own = {"headers": {"Content-Security-Policy": csp}, "page_config_data": {"buildCheck": True}}
    (tmp_path / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"tornado_settings": own}})
    )
    server = launch(fakehub, tmp_path, app="lab")
    try:
        page = lab_page(server, fakehub)
        assert page.headers["Content-Security-Policy"] == csp  # the server's own
        assert page.headers["X-JupyterHub-Version"]  # and the hub's: stock clients check it
        cfg = page_config(server, fakehub, page)
        assert (cfg["hubPrefix"], cfg["hubUser"], cfg["hubServerName"]) == ("/hub/", "alice", "")
        assert cfg["token"] == ""
        assert cfg["buildCheck"] is True  # the server's config wins where both set a value
        assert cfg["buildAvailable"] is False
    finally:
        shutdown(server)
