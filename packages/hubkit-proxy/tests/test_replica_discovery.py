"""Replicas found at run time (``discovery``): a new replica gets the hub's routes, a gone one is dropped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Backend, ProxyProc, make_proxy
from hubkit.interfaces import Route
from hubkit.plugins.registry import HubInfo
from hubkit_proxy.plugin import HubkitProxyConfig
from test_plugin import alice, build

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


class ListSource:
    """A replica source the test drives by hand (what e.g. a Kubernetes EndpointSlice watch would do)."""

    last: ListSource | None = None

    def __init__(self, options: dict[str, Any], hub: HubInfo) -> None:
        self.urls: list[str] = list(options["urls"])
        self.on_change: Callable[[list[str]], None] | None = None
        self.stopped = False
        ListSource.last = self

    async def start(self, on_change: Callable[[list[str]], None]) -> None:
        self.on_change = on_change
        on_change(self.urls)

    async def stop(self) -> None:
        self.stopped = True

    def change(self, urls: list[str]) -> None:
        assert self.on_change is not None
        self.on_change(urls)


async def _routes(p: ProxyProc) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        return dict((await c.get(p.api_url + "/api/routes", headers=p.auth)).json())


async def _until(cond: Callable[[], Any], seconds: float = 10) -> None:
    import anyio

    for _ in range(int(seconds / 0.05)):  # bounded
        if await cond():
            return
        await anyio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_discovered_replicas_follow_the_source(
    tmp_path: Path, backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    a = make_proxy("hubkit", "--state-file", str(tmp_path / "a.jsonl"))
    a.start()
    proxy_factory.append(a)
    b = make_proxy("hubkit", "--state-file", str(tmp_path / "b.jsonl"), token=a.token)
    b.start()
    proxy_factory.append(b)
    plugin = build("hubkit-proxy", tmp_path, backend, should_start=False, auth_token=a.token,
                   discovery=f"{__name__}:ListSource", discovery_options={"urls": [a.api_url]})
    await plugin.startup()
    try:
        source = ListSource.last
        assert source is not None and [c.api_url for c in plugin.clients] == [a.api_url]
        await plugin.add_route(alice(backend))
        assert "/user/alice" in await _routes(a) and "/user/alice" not in await _routes(b)

        source.change([a.api_url, b.api_url])  # scaled up: the new replica gets every route of this hub
        await _until(lambda: _has(b, "/user/alice"))

        source.change([b.api_url])  # scaled down: a is no longer written to
        bob = Route("/user/bob/", backend.url, {"user": "bob", "server_name": ""})
        await plugin.add_route(bob)
        assert "/user/bob" in await _routes(b) and "/user/bob" not in await _routes(a)
        assert set(await plugin.get_routes()) == {"/user/alice/", "/user/bob/"}
    finally:
        await plugin.shutdown()
    assert source.stopped


async def _has(p: ProxyProc, path: str) -> bool:
    return path in await _routes(p)


def test_discovery_needs_external_replicas() -> None:
    with pytest.raises(ValueError, match="should_start = false"):
        HubkitProxyConfig(discovery="kubernetes")
