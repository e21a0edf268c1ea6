"""Fixtures: a real OpenID Connect provider (panva's oidc-provider on node) on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit.testing import require
from oauth_helpers import OP_MODULE, RealOP, free_port, new_key


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
