"""The plugin entry point: what a hub that loads it gets, and what it does not pay for."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hubkit.plugins.registry import BackendRegistry, HubInfo
from hubkit_spawn_k8s import plugin
from hubkit_spawn_k8s.config import KubeSpawnerConfig


def test_loading_the_plugin_leaves_the_kubernetes_client_unimported() -> None:
    """Every hub loads every installed plugin at start: the client's import (seconds on a busy machine) is paid
    only by a hub that builds the spawner."""
    code = (
        "import sys, hubkit_spawn_k8s.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'kubernetes_validate')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_the_registered_factory_builds_the_kube_spawner() -> None:
    from hubkit_spawn_k8s.spawner import KubeSpawner

    reg: BackendRegistry[Any] = BackendRegistry("spawner")
    plugin.hubkit_register_spawners(reg)
    entry = reg.get("kubernetes")
    assert entry.config_model is KubeSpawnerConfig
    hub = HubInfo(hub_id="h", data_dir="/tmp", hub_api_url="", hub_url="", public_url="")
    backend = entry.factory(config=KubeSpawnerConfig(), hub=hub)
    assert isinstance(backend, KubeSpawner) and backend.hub is hub
