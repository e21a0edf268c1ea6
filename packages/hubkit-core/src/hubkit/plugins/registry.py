"""Registries handed to the ``hubkit_register_*`` hooks.

Plugins contribute *backends* (authenticators, spawners, proxies) as factories plus a typed config model; the
core picks one per role by the name given in config and builds it. Duplicate names are a startup error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ..errors import PluginError, UnknownBackend
from ..interfaces import WebRoute

T = TypeVar("T")


class EmptyConfig(BaseModel):
    """Config model for backends without options."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class HubInfo:
    """What a backend may know about the hub that builds it (no back-reference to the app)."""

    hub_id: str
    data_dir: str
    hub_api_url: str  # as reachable from user servers
    hub_url: str  # the hub's own http address (for the proxy's default route)
    public_url: str  # what browsers use, e.g. http://127.0.0.1:8000
    base_url: str = "/"
    public_ip: str = "127.0.0.1"
    public_port: int = 8000
    ssl_key: str | None = None
    ssl_cert: str | None = None
    is_root: bool = False
    subdomain_host: str = ""  # per-user subdomains: the hub's origin; proxies then route by host ("" = off)
    # a secret a proxy that can prove its hop sends to the hub as ``X-Hubkit-Forwarded`` (see MarksHubRequests)
    forward_mark: str = field(default="", repr=False)


@dataclass(frozen=True)
class BackendEntry(Generic[T]):
    name: str
    factory: Callable[..., T]
    config_model: type[BaseModel]
    description: str
    plugin: str  # the registering plugin's name
    alias_of: str | None = None  # a former name kept working; listings show the current one


@dataclass
class BackendRegistry(Generic[T]):
    """Backends of one role ("spawner", "proxy", "auth"). Built by ``factory(config=<model>, hub=HubInfo)``."""

    role: str
    _entries: dict[str, BackendEntry[T]] = field(default_factory=dict)
    current_plugin: str = "?"

    def add(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        config: type[BaseModel] = EmptyConfig,
        description: str = "",
        alias_of: str | None = None,
    ) -> None:
        """``alias_of``: ``name`` is a former name of that backend, still accepted in config."""
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                self.current_plugin, f"{self.role} backend {name!r} is already registered by {other!r}"
            )
        self._entries[name] = BackendEntry(name, factory, config, description, self.current_plugin, alias_of)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[BackendEntry[T]]:
        return iter(self._entries[n] for n in self.names())

    def get(self, name: str) -> BackendEntry[T]:
        try:
            return self._entries[name]
        except KeyError:
            installed = ", ".join(self.names()) or "none"
            raise UnknownBackend(
                f"unknown {self.role} backend {name!r}; installed: {installed}", key=f"{self.role}.backend"
            ) from None


@dataclass
class StorageRegistry:
    """Tables and Alembic migration branches that plugins contribute."""

    metadatas: list[Any] = field(default_factory=list)
    migration_locations: dict[str, str] = field(default_factory=dict)  # branch label -> "pkg.module:dir"

    def add_metadata(self, metadata: Any) -> None:
        self.metadatas.append(metadata)

    def add_migrations(self, location: str, *, branch: str) -> None:
        """``location`` is a directory path or ``"package:subdir"`` holding Alembic version files."""
        self.migration_locations[branch] = location


@dataclass
class WebRouteRegistry:
    routes: list[WebRoute] = field(default_factory=list)

    def add(self, route: WebRoute) -> None:
        self.routes.append(route)


@dataclass
class ConfigSectionRegistry:
    """Config sections of plugins that are not backends (e.g. ``[plugins.example_audit]``), validated by a model.

    A plugin whose runtime hooks need the section passes ``hooks``: a callable that receives the validated
    section and returns an object with ``hubkit_*`` hook methods. Each hub builds its own such object and
    registers it, so two hubs in one process never share a configuration."""

    sections: dict[str, type[BaseModel]] = field(default_factory=dict)
    hook_factories: dict[str, Callable[[Any], object]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # section -> the registering plugin's name
    current_plugin: str = "?"

    def add(
        self, section: str, model: type[BaseModel], *, hooks: Callable[[Any], object] | None = None
    ) -> None:
        if section in self.sections:
            raise PluginError(
                self.current_plugin,
                f"config section {section!r} is already declared by {self.owners[section]!r}",
            )
        self.sections[section] = model
        self.owners[section] = self.current_plugin
        if hooks is not None:
            self.hook_factories[section] = hooks
