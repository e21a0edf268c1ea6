"""hubkit plugin entry point: registers the ``kubernetes`` spawner.

Removing a deleted user's claim (``storage.delete_pvc``) is a runtime hook of
:class:`~hubkit_spawn_k8s.spawner.KubeSpawner` itself: the hub registers the instance it built, so the hook
reaches that instance's cluster and namespace.
"""

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
