"""hubkit plugin hooks: register the ``docker`` spawner and clean up after deleted users."""

from __future__ import annotations

import logging
from typing import Any

from hubkit.interfaces import UserInfo
from hubkit.plugins import hookimpl

from .backend import ACTIVE, DockerSpawner
from .config import DockerSpawnerConfig

log = logging.getLogger(__name__)


@hookimpl
def hubkit_register_spawners(registry: Any) -> None:
    registry.add(
        "docker",
        DockerSpawner,
        config=DockerSpawnerConfig,
        description="each user server in its own Docker container (named home volume, limits, 3 network modes)",
    )


@hookimpl
async def hubkit_user_deleted(user: UserInfo) -> None:
    for backend in list(ACTIVE):
        if backend._client is None:  # shut down
            continue
        removed = await backend.delete_user_resources(user)
        if removed:
            log.info("removed Docker resources of deleted user %s: %s", user.name, ", ".join(removed))
