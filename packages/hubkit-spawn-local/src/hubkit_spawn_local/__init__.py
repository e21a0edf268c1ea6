"""hubkit's ``local`` spawner backend: single-user servers as local processes that outlive the hub."""

from __future__ import annotations

from .config import LocalSpawnerConfig
from .spawner import LocalSpawner

__all__ = ["LocalSpawner", "LocalSpawnerConfig"]
