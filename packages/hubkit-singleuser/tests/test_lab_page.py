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


def page_config(server: Server, fakehub: FakeHub) -> dict[str, Any]:
    alice = fakehub.add_token("alice", ["access:servers!server=alice/"])
    r = httpx.get(server.url + "lab", headers={"Authorization": f"token {alice}"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    found = CONFIG_DATA.search(r.text)
    assert found, r.text[:500]
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
