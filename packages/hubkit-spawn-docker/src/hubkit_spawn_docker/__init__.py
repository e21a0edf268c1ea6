"""hubkit-spawn-docker: run each hubkit user server in its own Docker container."""

from __future__ import annotations

from .backend import DockerSpawner
from .config import DockerSpawnerConfig, MountConfig

__all__ = ["DockerSpawner", "DockerSpawnerConfig", "MountConfig"]
