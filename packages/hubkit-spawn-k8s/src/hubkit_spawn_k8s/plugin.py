"""hubkit plugin entry point: registers the ``kubernetes`` spawner.

Removing a deleted user's claim (``storage.delete_pvc``) is a runtime hook of
:class:`~hubkit_spawn_k8s.spawner.KubeSpawner` itself: the hub registers the instance it built, so the hook
reaches that instance's cluster and namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry, HubInfo

from .config import KubeSpawnerConfig

if TYPE_CHECKING:
    from .spawner import KubeSpawner


def kube_spawner(*, config: KubeSpawnerConfig, hub: HubInfo) -> KubeSpawner:
    """Builds a :class:`~hubkit_spawn_k8s.spawner.KubeSpawner`. Imported here, not at the top: the kubernetes
    client takes seconds to import (more on a busy machine), and every hub loads every installed plugin at start,
    so a hub that does not spawn on Kubernetes would pay for it on each (re)start."""
    from .spawner import KubeSpawner

    return KubeSpawner(config=config, hub=hub)


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "kubernetes",
        kube_spawner,
        config=KubeSpawnerConfig,
        description="one pod per server on Kubernetes (shared watches, profiles, per-user PVCs)",
    )
