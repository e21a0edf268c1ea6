"""The ``none`` proxy backend: keeps routes in memory and routes nothing (tests, API-only hubs)."""

from __future__ import annotations

from typing import Any

from ..interfaces import Route
from ..plugins import hookimpl
from ..plugins.registry import BackendRegistry, EmptyConfig, HubInfo


class NullProxy:
    def __init__(self, config: EmptyConfig, hub: HubInfo) -> None:
        self.routes: dict[str, Route] = {}

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def add_route(self, route: Route) -> None:
        self.routes[route.routespec] = route

    async def delete_route(self, routespec: str) -> None:
        self.routes.pop(routespec, None)

    async def get_routes(self) -> dict[str, Route]:
        return dict(self.routes)


@hookimpl
def hubkit_register_proxies(registry: BackendRegistry[Any]) -> None:
    registry.add("none", NullProxy, description="no proxy; routes kept in memory only")
