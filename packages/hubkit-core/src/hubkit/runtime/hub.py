"""The ``Hub``: everything one hub process holds, built from Settings, and its background tasks.

``create`` does no I/O to user servers; ``start`` readies the database and backends, then returns at once
while re-adoption, polling and route reconciling run in the background, so the web app can answer
immediately after a restart however many servers are running.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pluggy
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..config.models import Settings
from ..errors import ConfigError, HubkitError, PluginError
from ..interfaces import Authenticator, ProxyBackend, SpawnerBackend
from ..plugins.hooks import Hooks, Registries, collect_registries
from ..plugins.manager import build_plugin_manager
from ..plugins.registry import HubInfo
from ..routing.reconcile import RouteReconciler
from ..spawn import adopt, poller
from ..spawn.engine import SpawnEngine
from ..spawn.env import HubUrls, normalize_base_url, server_prefix
from ..storage import migrate
from ..storage.engine import create_engine, create_sessionmaker, is_sqlite, normalize_url
from ..storage.orm import User
from ..storage.types import CryptKeeper
from .backends import build_backend, plugin_config, validate_sections
from .secrets import load_cookie_secret

log = logging.getLogger("hubkit")


def hub_urls(settings: Settings) -> tuple[HubUrls, HubInfo]:
    h = settings.hub
    base = normalize_base_url(h.base_url)
    proto = "https" if h.ssl_cert else "http"
    if settings.proxy.backend == "none":  # the hub itself listens on the public address
        own = f"{proto}://{h.ip or '127.0.0.1'}:{h.port}"
    else:
        own = f"http://{h.hub_ip or '127.0.0.1'}:{h.hub_port}"
    connect = (h.hub_connect_url or own).rstrip("/")
    public = (h.public_url or f"{proto}://{h.ip or '127.0.0.1'}:{h.port}").rstrip("/")
    urls = HubUrls(
        base_url=base, hub_connect_url=connect, public_url=h.public_url or "", default_url=h.default_url
    )
    info = HubInfo(
        hub_id=h.hub_id,
        data_dir=str(Path(h.data_dir).resolve()),
        hub_api_url=urls.hub_api_url,
        hub_url=own,
        public_url=public,
        base_url=base,
        public_ip=h.ip,
        public_port=h.port,
        ssl_key=h.ssl_key,
        ssl_cert=h.ssl_cert,
        is_root=os.geteuid() == 0,
    )
    return urls, info


class Hub:
    settings: Settings
    info: HubInfo
    pm: pluggy.PluginManager
    hooks: Hooks
    registries: Registries
    engine: AsyncEngine
    db: async_sessionmaker[AsyncSession]
    authenticator: Authenticator
    spawner: SpawnerBackend
    proxy: ProxyBackend
    spawns: SpawnEngine
    routes: RouteReconciler
    cookie_secret: bytes

    def __init__(self, **parts: Any) -> None:
        for k, v in parts.items():
            setattr(self, k, v)
        self._tasks: list[asyncio.Task[Any]] = []
        self.adoption = adopt.AdoptReport()
        self.started = False

    @classmethod
    async def create(
        cls, settings: Settings, *, extra_plugins: Sequence[object] = (), load_entry_points: bool = True
    ) -> Hub:
        from ..builtin.allow_list import AllowList

        allow = AllowList(settings.auth.allowed_users, settings.auth.blocked_users, settings.auth.allow_all)
        pm = build_plugin_manager(load_entry_points=load_entry_points, extra=[allow, *extra_plugins])
        registries = collect_registries(pm)
        validate_sections(settings, registries)
        for section, callback in registries.config_sections.callbacks.items():
            callback(plugin_config(settings, registries, section))
        CryptKeeper.configure(settings.hub.crypt_keys or None)
        urls, info = hub_urls(settings)
        Path(info.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        hooks = Hooks(pm)
        authenticator = build_backend(
            registries.authenticators, settings.auth.backend, settings.auth.backends, info
        )
        spawner = build_backend(
            registries.spawners, settings.spawner.backend, settings.spawner.backends, info
        )
        proxy = build_backend(registries.proxies, settings.proxy.backend, settings.proxy.backends, info)
        engine = create_engine(normalize_url(settings.hub.db_url, info.data_dir))
        db = create_sessionmaker(engine)
        cookie_secret = load_cookie_secret(Path(info.data_dir) / settings.hub.cookie_secret_file)
        routes = RouteReconciler(proxy, db, hooks, base_url=urls.base_url, hub_id=info.hub_id)
        spawns = SpawnEngine(
            config=settings.spawner,
            db=db,
            backend=spawner,
            backend_name=settings.spawner.backend,
            hooks=hooks,
            routes=routes,
            urls=urls,
            hub_id=info.hub_id,
            allow_named_servers=settings.hub.allow_named_servers,
            named_server_limit=settings.hub.named_server_limit_per_user,
            serialize_writes=is_sqlite(engine.url),
            authenticator=authenticator,
        )
        return cls(
            settings=settings,
            info=info,
            urls=urls,
            pm=pm,
            hooks=hooks,
            registries=registries,
            engine=engine,
            db=db,
            authenticator=authenticator,
            spawner=spawner,
            proxy=proxy,
            spawns=spawns,
            routes=routes,
            cookie_secret=cookie_secret,
        )

    def server_url(self, user: str, server_name: str = "") -> str:
        return server_prefix(self.info.base_url, user, server_name)

    def bind_address(self) -> tuple[str, int]:
        """Where the hub's web app listens: the public address when there is no proxy."""
        h = self.settings.hub
        return (h.ip, h.port) if self.settings.proxy.backend == "none" else (h.hub_ip, h.hub_port)

    async def start(self, *, background: bool = True) -> None:
        """Database and backends ready. ``background=False`` defers adoption/poll/reconcile to
        :meth:`start_background`, so a server can start listening first (the CLI does this)."""
        await migrate.ensure_schema(self.engine, self.registries.storage, auto=is_sqlite(self.engine.url))
        await self._ensure_admins()
        for role, backend in (("auth", self.authenticator), ("spawner", self.spawner), ("proxy", self.proxy)):
            try:
                startup = getattr(backend, "startup", None)
                if startup is not None:
                    await startup()
            except HubkitError:
                raise
            except Exception as exc:
                raise PluginError(
                    getattr(self.settings, role).backend, f"{role} backend failed to start: {exc!r}"
                ) from exc
        self.started = True
        if background:
            self.start_background()

    def start_background(self) -> None:
        """Re-adoption, then periodic route reconciling; periodic polling. Idempotent."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._adopt_then_reconcile(), name="hubkit-adopt"))
        self._tasks.append(
            asyncio.create_task(
                poller.poll_forever(self.spawns, self.settings.spawner.poll_interval), name="hubkit-poll"
            )
        )

    async def _adopt_then_reconcile(self) -> None:
        await adopt.adopt_all(self.spawns, self.adoption)
        await self.routes.run_forever(self.settings.proxy.check_interval)

    async def _ensure_admins(self) -> None:
        names = set(self.settings.hub.admin_users) | set(self.settings.auth.admin_users)
        if not names:
            return
        import secrets as _secrets

        async with self.db() as s:
            existing = {
                u.name: u for u in (await s.execute(select(User).where(User.name.in_(names)))).scalars()
            }
            for name in sorted(names):
                u = existing.get(name)
                if u is None:
                    s.add(User(name=name, admin=True, cookie_id=_secrets.token_hex(16)))
                elif not u.admin:
                    u.admin = True
            await s.commit()

    async def stop(self) -> None:
        """End background work. User servers and an external/embedded proxy keep running."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s failed", t.get_name())
        self._tasks.clear()
        await self.spawns.close()
        for backend in (self.proxy, self.spawner, self.authenticator):
            shutdown = getattr(backend, "shutdown", None)  # optional for authenticators
            try:
                if shutdown is not None:
                    await shutdown()
            except Exception:
                log.exception("shutting down %r", backend)
        await self.engine.dispose()
        self.started = False


__all__ = ["ConfigError", "Hub", "hub_urls"]
