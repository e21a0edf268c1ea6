"""Registers the ``kubernetes`` spawner backend."""

from __future__ import annotations

from typing import Any

from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from .config import KubeSpawnerConfig
from .spawner import KubeSpawner


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "kubernetes",
        KubeSpawner,
        config=KubeSpawnerConfig,
        description="one pod per server on Kubernetes (shared watches, profiles, per-user PVCs)",
    )
