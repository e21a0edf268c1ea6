"""Registers the ``kubernetes`` spawner backend, and removes a deleted user's claim when configured."""

from __future__ import annotations

import logging
from typing import Any

from hubkit.interfaces import UserInfo
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry

from .config import KubeSpawnerConfig
from .spawner import ACTIVE, KubeSpawner

log = logging.getLogger(__name__)


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "kubernetes",
        KubeSpawner,
        config=KubeSpawnerConfig,
        description="one pod per server on Kubernetes (shared watches, profiles, per-user PVCs)",
    )


@hookimpl
async def hubkit_user_deleted(user: UserInfo) -> None:
    for backend in list(ACTIVE):
        removed = await backend.delete_user_resources(user)
        if removed:
            log.info("removed the claim of deleted user %s: %s", user.name, ", ".join(removed))
