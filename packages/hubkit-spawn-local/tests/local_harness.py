"""Helpers shared by the local spawner tests (a recording SpawnContext, specs with the real env contract)."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hubkit.interfaces import JSONDict, ProgressEvent, ServerSpec, UserInfo
from hubkit.plugins.registry import HubInfo
from hubkit.spawn.env import build_env
from hubkit.urls import HubUrls, server_prefix

from hubkit_spawn_local import LocalSpawner


class Ctx:
    """A real SpawnContext stand-in that records what the backend persisted and reported."""

    def __init__(self) -> None:
        self.saved: list[JSONDict] = []
        self.events: list[ProgressEvent] = []

    async def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def save_state(self, state: JSONDict) -> None:
        self.saved.append(dict(state))


def make_spec(
    user: str = "alice", server: str = "", cmd: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> ServerSpec:
    token = secrets.token_hex(16)
    urls = HubUrls(base_url="/", hub_connect_url="http://127.0.0.1:9")  # nothing listens: activity off below
    e = build_env(urls, user, server, token)
    e.pop("JUPYTERHUB_ACTIVITY_URL")
    e.update(env or {})
    return ServerSpec(
        user=UserInfo(user),
        server_name=server,
        server_id=1,
        url_prefix=server_prefix("/", user, server),
        hub_api_url=urls.hub_api_url,
        env=e,
        cmd=cmd,
        api_token=token,
    )


def hub_info(tmp: Path) -> HubInfo:
    return HubInfo(
        hub_id="t" + secrets.token_hex(3),
        data_dir=str(tmp / "data"),
        hub_api_url="http://127.0.0.1:9/hub/api",
        hub_url="http://127.0.0.1:9",
        public_url="http://127.0.0.1:8000",
        is_root=os.geteuid() == 0,
    )


def wait_http(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout}s")


SINGLEUSER = shutil.which("hubkit-singleuser", path=os.path.dirname(sys.executable))


async def poll_until_dead(sp: LocalSpawner, spec: ServerSpec, state: JSONDict, timeout: float = 20) -> Any:
    import anyio

    with anyio.fail_after(timeout):
        while True:
            st = await sp.poll(spec, state)
            if st is not None:
                return st
            await anyio.sleep(0.05)
