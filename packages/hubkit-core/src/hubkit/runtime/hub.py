"""The ``Hub``: everything one hub process holds, built from Settings, and its background duties.

``create`` does no I/O to user servers; ``start`` readies the database and backends, then returns at once
while re-adoption, polling and route reconciling run in the background, so the web app can answer
immediately after a restart however many servers are running. Nothing here is process-wide: two hubs in one
process (tests, benchmarks) each have their own plugin manager, backends, keys and database handle.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..auth import forwarded
from ..auth.cache import IdentityCache
from ..auth.pg_ratelimit import SharedLoginRateLimiter
from ..auth.ratelimit import LoginLimiter, LoginRateLimiter
from ..builtin.allow_list import AllowList
from ..config.models import Settings
from ..errors import HubkitError, PluginError
from ..hubservices import env as service_env
from ..hubservices import registry as service_registry
from ..hubservices.supervisor import ServiceSupervisor
from ..interfaces import Authenticator, MarksHubRequests, ProxyBackend, ProxyProcess, SpawnerBackend
from ..plugins.hooks import Hooks, Registries, collect_registries
from ..plugins.manager import PluginHost, build_plugin_manager
from ..plugins.registry import HubInfo
from ..routing.reconcile import RouteReconciler
from ..services.context import ServiceContext
from ..spawn import adopt, poller, remote_stop
from ..spawn.engine import SpawnEngine
from ..spawn.owners import Owners, SoleOwner
from ..spawn.parts import SpawnParts, SpawnPolicy
from ..spawn.pg_queue import PgAdmission
from ..spawn.queue import Admission
from ..storage import migrate
from ..storage.access import Storage
from ..storage.crypt import CryptKeeper
from ..storage.orm import User
from ..urls import HubUrls, normalize_base_url
from .backends import instantiate, plugin_config, validate_sections
from .dblock import SqliteProcessLock
from .duties import Duties, Duty, Leadership, SoleProcess
from .leases import PgLeadership
from .secrets import load_cookie_secret

log = logging.getLogger("hubkit")


def forward_mark(cookie_secret: bytes) -> str:
    """Derived, so every replica sharing the secret expects the same mark, and a restarted proxy keeps it."""
    return hmac.new(cookie_secret, b"hubkit X-Hubkit-Forwarded", hashlib.sha256).hexdigest()


def hub_urls(settings: Settings) -> tuple[HubUrls, HubInfo]:
    h = settings.hub
    base = normalize_base_url(h.base_url)
    proto = "https" if h.ssl_cert else "http"
    if settings.proxy.backend == "none":  # the hub itself listens on the public address
        own = f"{proto}://{h.ip or '127.0.0.1'}:{h.port}"
    else:
        own = f"http://{h.hub_ip or '127.0.0.1'}:{h.hub_port}"
    connect = h.hub_connect_url or own
    public = (h.public_url or f"{proto}://{h.ip or '127.0.0.1'}:{h.port}").rstrip("/")
    urls = HubUrls.build(base, connect, h.public_url or "", h.default_url, h.subdomain_host or "")
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
        subdomain_host=urls.subdomain_host,
    )
    return urls, info


def leadership_for(storage: Storage) -> tuple[Leadership, Owners]:
    """SQLite: one hub process (:mod:`.dblock`) holds every duty and owns every spawn. PostgreSQL: leases
    (:mod:`.leases`), so that replicas on one database share the duties and take over each other's spawns."""
    if storage.is_sqlite:
        return SoleProcess(), SoleOwner()
    leases = PgLeadership(storage.engine.url)
    return leases, leases


def admission_for(storage: Storage, owners: Owners, limit: int) -> Admission | None:
    """Replicas with a limit share one queue in the database (:mod:`~hubkit.spawn.pg_queue`); otherwise the engine
    keeps its in-process queue (``None``)."""
    return PgAdmission(storage, owners, limit) if owners.shared and limit > 0 else None


def limiter_for(storage: Storage, owners: Owners, settings: Settings) -> LoginLimiter:
    """Replicas count failed logins together in the database (:mod:`~hubkit.auth.pg_ratelimit`); a single hub
    process in its memory."""
    h = settings.hub
    if owners.shared:
        return SharedLoginRateLimiter(
            storage,
            h.login_rate_limit,
            h.login_rate_window_seconds,
            per_address=h.login_rate_limit_per_address,
        )
    return LoginRateLimiter(
        h.login_rate_limit, h.login_rate_window_seconds, per_address=h.login_rate_limit_per_address
    )


@dataclass
class Hub:
    settings: Settings
    info: HubInfo
    urls: HubUrls
    pm: PluginHost
    hooks: Hooks
    registries: Registries
    storage: Storage
    authenticator: Authenticator
    spawner: SpawnerBackend
    proxy: ProxyBackend
    spawns: SpawnEngine
    routes: RouteReconciler
    cookie_secret: bytes
    services: ServiceContext
    adoption: adopt.AdoptReport = field(default_factory=adopt.AdoptReport)
    duties: Duties = field(default_factory=Duties)
    started: bool = False
    marked: bool = False  # the proxy marks what it forwards to the hub with info.forward_mark

    @property
    def trust(self) -> forwarded.Trust:
        """Whose ``X-Forwarded-*`` this hub believes (auth/forwarded.py)."""
        return forwarded.trust_for(self.settings, self.info.forward_mark if self.marked else None)

    db_lock: SqliteProcessLock | None = None

    @classmethod
    async def create(
        cls, settings: Settings, *, extra_plugins: Sequence[object] = (), load_entry_points: bool = True
    ) -> Hub:
        allow = AllowList(settings.auth.allowed_users, settings.auth.blocked_users, settings.auth.allow_all)
        pm = build_plugin_manager(
            load_entry_points=load_entry_points,
            extra=[allow, *extra_plugins],
            backends=(settings.auth.backend, settings.spawner.backend, settings.proxy.backend),
        )
        registries = collect_registries(pm)
        validate_sections(settings, registries)
        for section, factory in registries.config_sections.hook_factories.items():
            owner = registries.config_sections.owners[section]
            pm.register_instance(
                factory(plugin_config(settings, registries, section)),
                f"plugins:{section}",
                pm.distribution_of(owner) or "?",
            )
        urls, info = hub_urls(settings)
        service_registry.check(settings.services, urls)  # a bad [[services]] entry stops the hub here
        Path(info.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        cookie_secret = load_cookie_secret(Path(info.data_dir) / settings.hub.cookie_secret_file)
        info = replace(info, forward_mark=forward_mark(cookie_secret))
        hooks = Hooks(pm)
        authenticator = instantiate(
            pm, registries.authenticators, settings.auth.backend, settings.auth.backends, info
        )
        spawner = instantiate(
            pm, registries.spawners, settings.spawner.backend, settings.spawner.backends, info
        )
        proxy = instantiate(pm, registries.proxies, settings.proxy.backend, settings.proxy.backends, info)
        storage = Storage.open(
            settings.hub.db_url, info.data_dir, crypt=CryptKeeper(settings.hub.crypt_keys or None)
        )
        routes = RouteReconciler(proxy, storage, hooks, urls=urls, hub_id=info.hub_id)
        leadership, owners = leadership_for(storage)
        spawns = SpawnEngine(
            SpawnPolicy.from_settings(settings),
            storage,
            SpawnParts(backend=spawner, hooks=hooks, routes=routes, urls=urls, authenticator=authenticator),
            admission=admission_for(storage, owners, settings.spawner.concurrent_spawn_limit),
            owners=owners,
        )
        if isinstance(leadership, PgLeadership):
            leadership.on_lost.append(spawns.inflight.abandon_all)
        services = ServiceContext(
            settings=settings,
            storage=storage,
            hooks=hooks,
            spawns=spawns,
            authenticator=authenticator,
            spawner=spawner,
            proxy=proxy,
            routes=routes,
            urls=urls,
            limiter=limiter_for(storage, owners, settings),
            identities=IdentityCache(storage.changes),
        )
        return cls(
            duties=Duties(leadership),
            settings=settings,
            info=info,
            urls=urls,
            pm=pm,
            hooks=hooks,
            registries=registries,
            storage=storage,
            authenticator=authenticator,
            spawner=spawner,
            proxy=proxy,
            spawns=spawns,
            routes=routes,
            cookie_secret=cookie_secret,
            services=services,
            marked=isinstance(proxy, MarksHubRequests) and proxy.marks_hub_requests(),
        )

    @property
    def db(self) -> async_sessionmaker[AsyncSession]:
        """Sessions on the hub's database: ``async with hub.db() as session``."""
        return self.storage.session

    @property
    def engine(self) -> AsyncEngine:
        return self.storage.engine

    @property
    def crypt(self) -> CryptKeeper:
        return self.storage.crypt

    def server_url(self, user: str, server_name: str = "") -> str:
        return self.urls.server(user, server_name)

    def bind_address(self) -> tuple[str, int]:
        """Where the hub's web app listens: the public address when there is no proxy."""
        h = self.settings.hub
        return (h.ip, h.port) if self.settings.proxy.backend == "none" else (h.hub_ip, h.hub_port)

    def lock_database(self) -> None:
        """For the entry points that serve the hub (``hubkit``, ASGI, WSGI): refuse a second hub process on one
        SQLite file (:class:`~.dblock.DatabaseInUse`). Released by :meth:`stop` or the process's end."""
        if self.db_lock is None:
            self.db_lock = SqliteProcessLock.acquire(self.storage.engine.url)

    async def start(self, *, background: bool = True) -> None:
        """Database and backends ready. ``background=False`` defers adoption/poll/reconcile to
        :meth:`start_background`, so a server can start listening first (the CLI does this)."""
        await migrate.ensure_schema(self.storage.engine, self.registries.storage, auto=self.storage.is_sqlite)
        await self.storage.listen()  # other hub processes' changes (PostgreSQL), before anything is cached
        await self._ensure_admins()
        # replicas: this process's lease, recorded on the spawns it drives
        await self.spawns.sp.owners.ready()
        await service_registry.sync_from_config(self.storage, self.settings.services, self.urls)
        backends: tuple[tuple[str, Authenticator | SpawnerBackend | ProxyBackend], ...] = (
            ("auth", self.authenticator),
            ("spawner", self.spawner),
            ("proxy", self.proxy),
        )
        for role, backend in backends:
            try:
                await backend.startup()
            except HubkitError:
                raise
            except Exception as exc:
                name = getattr(self.settings, role).backend
                raise PluginError(name, f"{role} backend failed to start: {exc!r}") from exc
        self.started = True
        if background:
            self.start_background()

    def background_duties(self) -> list[Duty]:
        """The hub's singleton duties. With several hub processes each runs on one of them (see duties.py)."""
        sp = self.spawns.sp

        async def adopt_then_reconcile() -> None:
            await adopt.adopt_all(sp, self.adoption)
            await self.routes.run_forever(self.settings.proxy.check_interval)

        duties = [
            Duty("adopt-and-reconcile-routes", adopt_then_reconcile),
            Duty("poll-servers", lambda: poller.poll_forever(sp, self.settings.spawner.poll_interval)),
        ]
        if any(s.managed for s in self.settings.services):
            duties.append(Duty("run-managed-services", self.service_supervisor().run))
        # replicas: spawns of a dead replica are finished; stops asked elsewhere are done
        if sp.owners.shared:
            duties.append(Duty("take-over-spawns", lambda: adopt.take_over_forever(sp)))
            duties.append(Duty("watch-stop-requests", lambda: remote_stop.watch_forever(sp), everywhere=True))
        return duties

    def service_supervisor(self) -> ServiceSupervisor:
        """Runs the ``[[services]]`` that have a command, talking to this hub's API over loopback."""
        return ServiceSupervisor(
            self.storage,
            self.urls,
            self.settings.services,
            api_url=service_env.local_api_url(self.info.hub_url, self.urls.base_url),
        )

    def start_background(self) -> None:
        """Re-adoption, then periodic route reconciling; periodic polling. Idempotent."""
        self.duties.start(self.background_duties())

    async def _ensure_admins(self) -> None:
        names = set(self.settings.hub.admin_users) | set(self.settings.auth.admin_users)
        if not names:
            return
        async with self.storage.session() as s:
            existing = {
                u.name: u for u in (await s.execute(select(User).where(User.name.in_(names)))).scalars()
            }
            for name in sorted(names):
                u = existing.get(name)
                if u is None:
                    s.add(User(name=name, admin=True, cookie_id=secrets.token_hex(16)))
                elif not u.admin:
                    u.admin = True
            await s.commit()

    async def stop(self) -> None:
        """End background work. User servers and an external/embedded proxy keep running, unless a shutdown
        request (``POST /hub/api/shutdown``) asked for them to stop too."""
        await self.duties.close()
        asked = self.services.lifecycle
        if asked.stop_servers:
            within = self.settings.spawner.stop_timeout * 2 + 5
            count = await self.spawns.stop_all(reason="hub shutdown", within=within)
            log.info("stopped %d user server(s) with the hub", count)
        await self.spawns.close()
        backends: tuple[Authenticator | SpawnerBackend | ProxyBackend, ...] = (
            self.proxy,
            self.spawner,
            self.authenticator,
        )
        for backend in backends:
            try:
                await backend.shutdown()
            except Exception:
                log.exception("shutting down %r", backend)
            if backend is self.proxy and asked.stop_proxy:
                await self._stop_proxy()  # after its shutdown: no watchdog left to restart it
        self.services.identities.clear()
        await self.storage.dispose()
        if self.db_lock is not None:
            self.db_lock.release()
            self.db_lock = None
        self.started = False

    async def _stop_proxy(self) -> None:
        if not isinstance(self.proxy, ProxyProcess):
            log.info(
                "the %s proxy backend cannot stop its proxy; it keeps running", self.settings.proxy.backend
            )
            return
        try:
            stopped = await asyncio.to_thread(self.proxy.stop_proxy)
        except Exception:
            log.exception("stopping the proxy")
            return
        log.info(
            "stopped the proxy" if stopped else "the proxy was not launched by this hub; it keeps running"
        )
