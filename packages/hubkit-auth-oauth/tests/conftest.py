from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubkit.plugins.registry import HubInfo
from hubkit.testing.processes import bound_socket
from oauth_fakes import FakeProvider, ServerThread


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[str, dict[str, FakeProvider]]]:
    holder: dict[str, FakeProvider] = {}
    sock = bound_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await holder["p"].app()(scope, receive, send)

    holder["p"] = FakeProvider(base=base)
    with ServerThread(app, sock):
        yield base, holder


@pytest.fixture
def provider(_server: tuple[str, dict[str, FakeProvider]]) -> FakeProvider:
    """A fresh fake provider (new state, new key) behind the module's server."""
    base, holder = _server
    holder["p"] = FakeProvider(base=base)
    return holder["p"]


@pytest.fixture
def hub() -> HubInfo:
    return HubInfo(hub_id="t", data_dir="/tmp", hub_api_url="http://127.0.0.1:8000/hub/api",
                   hub_url="http://127.0.0.1:8000", public_url="http://127.0.0.1:8000")
