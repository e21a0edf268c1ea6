"""What the spawn engine is built from: a policy read from the settings, and the parts it drives.

Two small typed values instead of a dozen constructor arguments. Both are plain data, so later work can swap a
part (a database-backed admission queue, a lease-guarded route table) without touching the engine's phases.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.models import Settings, SpawnerConfig
from ..errors import LimitReached
from ..interfaces import Authenticator, SpawnerBackend
from ..plugins.hooks import Hooks
from ..routing.reconcile import RouteReconciler
from ..urls import HubUrls


@dataclass(frozen=True)
class SpawnPolicy:
    """The hub's rules for spawning, from ``[spawner]`` and ``[hub]``."""

    config: SpawnerConfig
    backend_name: str
    hub_id: str
    allow_named_servers: bool = True
    named_server_limit: int = 0
    stop_wait: float = 5.0  # how long ``stop`` waits before answering "still stopping"

    @classmethod
    def from_settings(cls, settings: Settings) -> SpawnPolicy:
        return cls(
            config=settings.spawner,
            backend_name=settings.spawner.backend,
            hub_id=settings.hub.hub_id,
            allow_named_servers=settings.hub.allow_named_servers,
            named_server_limit=settings.hub.named_server_limit_per_user,
        )

    def check_server_name(self, server_name: str) -> None:
        """The named-servers switch: the one place it is enforced."""
        if server_name and not self.allow_named_servers:
            raise LimitReached("named servers are not enabled on this hub")

    def check_named_count(self, user: str, existing_named: int) -> None:
        """The per-user limit on named servers: the one place it is enforced."""
        limit = self.named_server_limit
        if limit and existing_named >= limit:
            raise LimitReached(f"{user} already has {existing_named} named servers (limit {limit})")


@dataclass(frozen=True)
class SpawnParts:
    """The plugins and core services a spawn drives."""

    backend: SpawnerBackend
    hooks: Hooks
    routes: RouteReconciler
    urls: HubUrls
    authenticator: Authenticator | None = None  # asked to refresh credentials before each spawn
