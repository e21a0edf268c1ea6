"""``ServiceContext``: what the services work with, as one small typed value the hub builds once.

The web layer hands it to every service call; nothing in it knows about HTTP. Hub replicas (later) keep the
same shape: their storage is shared, their spawn engine coordinates through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..auth.cache import IdentityCache
from ..auth.ratelimit import LoginLimiter
from ..config.models import Settings
from ..interfaces import Authenticator, ProxyBackend, SpawnerBackend
from ..plugins.hooks import Hooks
from ..routing.reconcile import RouteReconciler
from ..spawn.engine import SpawnEngine
from ..spawn.parts import SpawnPolicy
from ..storage.access import Storage
from ..storage.crypt import CryptKeeper
from ..urls import HubUrls
from .lifecycle import Lifecycle


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    storage: Storage
    hooks: Hooks
    spawns: SpawnEngine
    authenticator: Authenticator
    spawner: SpawnerBackend
    proxy: ProxyBackend
    routes: RouteReconciler
    urls: HubUrls
    limiter: LoginLimiter  # failed logins, per (user, address): in memory, or in the database for replicas
    identities: IdentityCache  # callers behind tokens and sessions; kept correct by storage.changes
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # a shutdown request, in this process

    @property
    def crypt(self) -> CryptKeeper:
        return self.storage.crypt

    @property
    def policy(self) -> SpawnPolicy:
        return self.spawns.policy
