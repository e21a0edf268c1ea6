"""Route reconciler: desired routes (running servers and hub services with a URL, in the DB) against
``proxy.get_routes()``.

The spawn engine adds and removes single routes as servers start and stop; the reconciler repairs drift
(a restarted in-memory proxy, a route deleted by hand) on a timer, and copies the proxy's per-route
``last_activity`` into ``servers.last_activity`` for the culler.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update

from ..interfaces import ProxyBackend, Route, RouteChange, RouteChangeKind
from ..plugins.hooks import Hooks
from ..storage.access import Storage
from ..storage.orm import Server, ServerStatus, Service, User
from ..urls import HubUrls

log = logging.getLogger("hubkit.routing")


def server_route(prefix: str, target: str, user: str, server_name: str, hub_id: str) -> Route:
    return Route(
        routespec=prefix,
        target=target,
        data={"user": user, "server_name": server_name, "hub_id": hub_id, "jupyterhub": True},
    )


def service_route(prefix: str, url: str, name: str, hub_id: str) -> Route:
    """A hub service at ``/services/<name>/``: the target is the service's origin (the proxy forwards the whole
    path, and the service serves under its prefix)."""
    parts = urlsplit(url)
    return Route(
        routespec=prefix,
        target=f"{parts.scheme}://{parts.netloc}",
        data={"service": name, "hub_id": hub_id, "jupyterhub": True},
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReconcileStats:
    added: int = 0
    removed: int = 0


class RouteReconciler:
    def __init__(
        self, proxy: ProxyBackend, storage: Storage, hooks: Hooks, *, urls: HubUrls, hub_id: str
    ) -> None:
        self.proxy = proxy
        self.storage = storage
        self.hooks = hooks
        self.urls = urls
        self.hub_id = hub_id
        self._lock = asyncio.Lock()

    def _owned(self, route: Route) -> bool:
        base = self.urls.base_url
        return (
            "user" in route.data
            or "service" in route.data
            or route.routespec.startswith((f"{base}user/", f"{base}services/"))
        )

    async def add(self, route: Route) -> None:
        await self.proxy.add_route(route)
        await self.hooks.route_changed(RouteChange(RouteChangeKind.ADDED, route))

    async def remove(self, routespec: str) -> None:
        routes = await self.proxy.get_routes()
        old = routes.get(routespec)
        await self.proxy.delete_route(routespec)
        if old is not None:
            await self.hooks.route_changed(RouteChange(RouteChangeKind.REMOVED, old))

    async def desired(self) -> tuple[dict[str, Route], set[str]]:
        """Routes that must exist (running), and routespecs to leave alone (starting: not routed yet)."""
        want: dict[str, Route] = {}
        keep: set[str] = set()
        async with self.storage.session() as session:
            rows = await session.execute(
                select(User.name, Server.name, Server.url, Server.status)
                .join(User, User.id == Server.user_id)
                .where(Server.status.in_([ServerStatus.RUNNING, ServerStatus.STARTING]))
            )
            for user, name, url, status in rows:
                prefix = self.urls.routespec(user, name)
                if status == ServerStatus.RUNNING and url:
                    want[prefix] = server_route(prefix, url, user, name, self.hub_id)
                else:
                    keep.add(prefix)
            services = await session.execute(select(Service.name, Service.url).where(Service.url != ""))
            for name, url in services:
                prefix = self.urls.service_routespec(name)
                want[prefix] = service_route(prefix, url, name, self.hub_id)
        return want, keep

    async def reconcile(self) -> ReconcileStats:
        async with self._lock:
            want, keep = await self.desired()
            have = await self.proxy.get_routes()
            added = removed = 0
            for spec, route in want.items():
                cur = have.get(spec)
                if cur is None or cur.target != route.target:
                    await self.add(route)
                    added += 1
            for spec, route in have.items():
                if spec not in want and spec not in keep and self._owned(route):
                    await self.remove(spec)
                    removed += 1
            await self._copy_activity(have, want)
        if added or removed:
            log.info("routes reconciled: added %d, removed %d", added, removed)
        return ReconcileStats(added, removed)

    async def _copy_activity(self, have: dict[str, Route], want: dict[str, Route]) -> None:
        updates: list[tuple[str, str, datetime]] = []
        for spec, route in have.items():
            ts = _parse_time(route.data.get("last_activity"))
            if ts is not None and spec in want and "user" in route.data:
                updates.append((str(route.data.get("user")), str(route.data.get("server_name", "")), ts))
        if not updates:
            return
        async with self.storage.session() as session:
            for user, name, ts in updates:
                uid = select(User.id).where(User.name == user).scalar_subquery()
                await session.execute(
                    update(Server)
                    .where(Server.user_id == uid, Server.name == name)
                    .where((Server.last_activity.is_(None)) | (Server.last_activity < ts))
                    .values(last_activity=ts)
                    .execution_options(synchronize_session=False)
                )
            await session.commit()

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("route reconcile failed")
            await asyncio.sleep(interval)
