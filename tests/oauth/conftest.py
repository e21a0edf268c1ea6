"""Fixtures: a real OpenID Connect provider (panva's oidc-provider on node) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hubkit.testing import require
from hubkit.testing.processes import bound_socket
from oauth_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    OP_MODULE,
    RealOP,
    RunningHub,
    StartHub,
    new_key,
)


def _need_op() -> None:
    require(shutil.which("node") is not None, "node is not installed")
    require(OP_MODULE.exists(), "oidc-provider is not installed: run .ci/setup/oauth.sh")


@pytest.fixture(scope="module")
def hub_socket() -> Iterator[socket.socket]:
    """The hub's listening socket for a module's tests: the OP registers its callback URL up front, and each
    test's server is handed a dup of it, so the port never becomes free for another program to take."""
    sock = bound_socket(listen=True)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def hub_port(hub_socket: socket.socket) -> int:
    return int(hub_socket.getsockname()[1])


@pytest.fixture(scope="module")
def redirect_uri(hub_port: int) -> str:
    return f"http://127.0.0.1:{hub_port}/hub/oauth_callback"


def _make_op(tmp: Path, hub_port: int, access_ttl: int = 3) -> RealOP:
    return RealOP(
        workdir=tmp,
        redirect_uris=[f"http://127.0.0.1:{hub_port}/hub/oauth_callback"],
        post_logout_uris=[f"http://127.0.0.1:{hub_port}/hub/login"],
        keys=[new_key("key-1")], access_ttl=access_ttl,
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


@pytest.fixture(scope="module")
def short_token_op(tmp_path_factory: pytest.TempPathFactory, hub_port: int) -> Iterator[RealOP]:
    """A real OP whose access tokens live 8 s: long enough to be shared, short enough to expire in a test."""
    _need_op()
    op = _make_op(tmp_path_factory.mktemp("op"), hub_port, access_ttl=8)
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
async def start_hub(
    hub_factory: Any, hub_port: int, hub_socket: socket.socket, tmp_path: Path
) -> AsyncIterator[StartHub]:
    """``await start_hub(op, **oidc_options)``: a started hub (``hub_factory`` of hubkit's pytest plugin)
    with the ``oidc`` backend pointed at the real OP ``op``, its web app served by uvicorn on ``hub_port``
    (the OP knows that callback URL)."""
    import hubkit_oauth.plugin as oauth_plugin
    from cryptography.fernet import Fernet
    from hubkit.runtime.app import create_app
    from hubkit.testing.plugin import make_settings

    url = f"http://127.0.0.1:{hub_port}"
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(op: RealOP, **options: Any) -> RunningHub:
        oidc = {
            "issuer": op.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "profile", "email", "groups", "offline_access"],
            "allowed_groups": ["staff", "students"], "admin_groups": ["hub-admins"], "jwks_refetch_interval": 0,
            **options,
        }
        settings = make_settings(
            tmp_path / "hub",
            hub={"ip": "127.0.0.1", "port": hub_port, "public_url": url,
                 "crypt_keys": [Fernet.generate_key().decode()]},
            auth={"backend": "oidc", "backends": {"oidc": oidc}},
        )
        hub = await hub_factory(settings, [oauth_plugin])
        server = uvicorn.Server(uvicorn.Config(create_app(hub), host="127.0.0.1", port=hub_port,
                                               log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[hub_socket.dup()]))
        servers.append((server, task))
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "the hub's web app did not start"
        return RunningHub(hub, url, op)

    try:
        yield start
    finally:
        for server, task in servers:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def running_hub(start_hub: StartHub, real_op: RealOP) -> RunningHub:
    """A started hub logging in through the module's real OP."""
    return await start_hub(real_op)
