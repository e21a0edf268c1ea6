"""Helpers for tests of the kubernetes spawner: images of the fake registry, specs, a recording context."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubkit.interfaces import JSONDict, ProgressEvent, ServerSpec, UserInfo
from hubkit.plugins.registry import HubInfo

from ..config import KubeSpawnerConfig
from .runtime import FakeImage
from .server import FakeKubernetes

TINY = "hubkit/tiny:1"  # in-process HTTP server
PROC = "quay.io/jupyter/base-notebook:2026-11"  # a real local process (hubkit's tiny server) per pod
CRASH = "hubkit/crash:1"
OOM = "hubkit/oom:1"

IMAGES = [
    FakeImage(TINY, runtime="http"),
    FakeImage(PROC, runtime="process", entrypoint=(sys.executable, "-m", "hubkit.builtin.tiny_server")),
    FakeImage(CRASH, runtime="process", entrypoint=(sys.executable, "-c", "import sys; print('boom'); sys.exit(3)")),
    FakeImage(OOM, runtime="oom"),
]


def hub_info(hub_id: str = "testhub") -> HubInfo:
    return HubInfo(hub_id=hub_id, data_dir=".", hub_api_url="http://127.0.0.1:8081/hub/api",
                   hub_url="http://127.0.0.1:8081", public_url="http://127.0.0.1:8000")


def make_config(kube: FakeKubernetes, tmp_path: Path, **overrides: Any) -> KubeSpawnerConfig:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    raw: dict[str, Any] = {"kubeconfig": kubeconfig, "image": TINY, "watch_timeout": 5, "start_timeout": 60,
                           "stop_wait": 30, "port": 18888}
    raw.update(overrides)
    return KubeSpawnerConfig.model_validate(raw)


def make_spec(user: str = "alice", server: str = "", groups: tuple[str, ...] = (), **kw: Any) -> ServerSpec:
    prefix = f"/user/{user}/" + (f"{server}/" if server else "")
    env = {"JUPYTERHUB_USER": user, "JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_API_TOKEN": "t" * 32,
           "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_SERVER_NAME": server}
    return ServerSpec(user=UserInfo(user, groups=groups), server_name=server, server_id=1, url_prefix=prefix,
                      hub_api_url="http://127.0.0.1:8081/hub/api", env=env, api_token="t" * 32, hub_id="testhub",
                      **kw)


class Ctx:
    """A SpawnContext that records what the backend reports (and can look at the cluster when saving)."""

    def __init__(self, on_save: Callable[[JSONDict], None] | None = None) -> None:
        self.events: list[ProgressEvent] = []
        self.states: list[JSONDict] = []
        self.on_save = on_save

    async def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def save_state(self, state: JSONDict) -> None:
        if self.on_save:
            self.on_save(dict(state))
        self.states.append(dict(state))

    def messages(self) -> list[str]:
        return [e.message for e in self.events]
