"""Entry point (group ``hubkit``): registers the ``local`` spawner backend."""

from __future__ import annotations

from typing import Any

from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from .config import LocalSpawnerConfig
from .spawner import LocalSpawner


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "local",
        LocalSpawner,
        config=LocalSpawnerConfig,
        description="local processes (own session; as the hub's user or, when root, as each user's account)",
    )
