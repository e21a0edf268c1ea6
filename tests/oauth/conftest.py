"""Fixtures: a real OpenID Connect provider (panva's oidc-provider on node) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hubkit.testing import require
from oauth_helpers import CLIENT_ID, CLIENT_SECRET, OP_MODULE, RealOP, RunningHub, free_port, new_key


def _need_op() -> None:
    require(shutil.which("node") is not None, "node is not installed")
    require(OP_MODULE.exists(), "oidc-provider is not installed: run .ci/setup/oauth.sh")


@pytest.fixture(scope="module")
def hub_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def redirect_uri(hub_port: int) -> str:
    return f"http://127.0.0.1:{hub_port}/hub/oauth_callback"


def _make_op(tmp: Path, hub_port: int) -> RealOP:
    return RealOP(
        port=free_port(), workdir=tmp,
        redirect_uris=[f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
        post_logout_uris=[f"http://127.0.0.1:{hub_port}/hub/login"],
        keys=[new_key("key-1")],
    )


@pytest.fixture(scope="module")
def real_op(tmp_path_factory: pytest.TempPathFactory, hub_port: int) -> Iterator[RealOP]:
    """A real OP shared by a module's tests (never restarted)."""
    _need_op()
    op = _make_op(tmp_path_factory.mktemp("op"), hub_port)
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def own_op(tmp_path: Path, hub_port: int) -> Iterator[RealOP]:
    """A real OP this test may restart (key rotation)."""
    _need_op()
    op = _make_op(tmp_path, hub_port)
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
async def running_hub(hub_factory: Any, real_op: RealOP, hub_port: int, tmp_path: Path) -> AsyncIterator[RunningHub]:
    """A started hub (``hub_factory`` of hubkit's pytest plugin) with the ``oidc`` backend pointed at the real
    OP, its web app served by uvicorn on ``hub_port`` (the OP knows that callback URL)."""
    import hubkit_oauth.plugin as oauth_plugin
    from cryptography.fernet import Fernet
    from hubkit.testing.plugin import make_settings
    from hubkit.web import create_app

    url = f"http://127.0.0.1:{hub_port}"
    oidc = {
        "issuer": real_op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "profile", "email", "groups", "offline_access"],
        "allowed_groups": ["staff", "students"], "admin_groups": ["hub-admins"], "jwks_refetch_interval": 0,
    }
    settings = make_settings(
        tmp_path / "hub",
        hub={"ip": "127.0.0.1", "port": hub_port, "public_url": url, "crypt_keys": [Fernet.generate_key().decode()]},
        auth={"backend": "oidc", "backends": {"oidc": oidc}},
    )
    hub = await hub_factory(settings, [oauth_plugin])
    app = create_app(hub)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=hub_port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "the hub's web app did not start"
    try:
        yield RunningHub(hub, url, real_op)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
