"""hubkit plugin entry point: registers the ``docker`` spawner.

Cleaning up after deleted users is a runtime hook of :class:`~hubkit_spawn_docker.backend.DockerSpawner` itself:
the hub registers the instance it built, so the hook reaches that instance's engine.
"""

from __future__ import annotations

from typing import Any

from hubkit.plugins import hookimpl

from .backend import DockerSpawner
from .config import DockerSpawnerConfig


@hookimpl
def hubkit_register_spawners(registry: Any) -> None:
    registry.add(
        "docker",
        DockerSpawner,
        config=DockerSpawnerConfig,
        description="each user server in its own Docker container (named home volume, limits, 3 network modes)",
    )
