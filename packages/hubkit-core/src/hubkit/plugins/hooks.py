"""A typed facade over the runtime hooks, so call sites in the core are typed and never touch pluggy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import HubkitError, PluginError
from ..interfaces import (
    Authenticator,
    AuthResult,
    Endpoint,
    ExitStatus,
    ProxyBackend,
    RouteChange,
    ServerSpec,
    SpawnerBackend,
    UserInfo,
)
from . import calling
from .manager import PluginHost
from .registry import (
    BackendRegistry,
    ConfigSectionRegistry,
    StorageRegistry,
    WebRouteRegistry,
)


@dataclass
class Registries:
    """Everything the registration hooks contributed."""

    authenticators: BackendRegistry[Authenticator] = field(default_factory=lambda: BackendRegistry("auth"))
    spawners: BackendRegistry[SpawnerBackend] = field(default_factory=lambda: BackendRegistry("spawner"))
    proxies: BackendRegistry[ProxyBackend] = field(default_factory=lambda: BackendRegistry("proxy"))
    storage: StorageRegistry = field(default_factory=StorageRegistry)
    web_routes: WebRouteRegistry = field(default_factory=WebRouteRegistry)
    config_sections: ConfigSectionRegistry = field(default_factory=ConfigSectionRegistry)


def collect_registries(pm: PluginHost) -> Registries:
    """Call every registration hook once, attributing each entry to its plugin."""
    regs = Registries()
    calls: list[tuple[str, str, Any]] = [
        ("hubkit_register_authenticators", "registry", regs.authenticators),
        ("hubkit_register_spawners", "registry", regs.spawners),
        ("hubkit_register_proxies", "registry", regs.proxies),
        ("hubkit_register_storage", "storage", regs.storage),
        ("hubkit_register_web_routes", "routes", regs.web_routes),
        ("hubkit_register_config", "config", regs.config_sections),
    ]
    for hook_name, arg, registry in calls:
        for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
            if isinstance(registry, BackendRegistry | ConfigSectionRegistry):
                registry.current_plugin = impl.plugin_name
            try:
                impl.function(**{arg: registry})
            except HubkitError:
                raise
            except Exception as exc:
                dist = pm.distribution_of(impl.plugin_name)
                raise PluginError(impl.plugin_name, f"{hook_name} raised {exc!r}", distribution=dist) from exc
    return regs


class Hooks:
    """One typed async method per runtime hook."""

    def __init__(self, pm: PluginHost) -> None:
        self.pm = pm

    async def normalize_username(self, name: str) -> str:
        result = await calling.call_first(self.pm, "hubkit_normalize_username", name=name)
        return str(result) if result is not None else name

    async def check_allowed(self, result: AuthResult) -> bool:
        verdicts = await calling.call_all(self.pm, "hubkit_check_allowed", result=result)
        return not any(v is False for v in verdicts)

    async def post_auth(self, result: AuthResult) -> AuthResult:
        out = await calling.call_chain(self.pm, "hubkit_post_auth", "result", result)
        assert isinstance(out, AuthResult)
        return out

    async def pre_spawn(self, spec: ServerSpec) -> ServerSpec:
        out = await calling.call_chain(self.pm, "hubkit_pre_spawn", "spec", spec)
        assert isinstance(out, ServerSpec)
        return out

    async def server_ready(self, spec: ServerSpec, endpoint: Endpoint) -> None:
        await calling.broadcast(self.pm, "hubkit_server_ready", spec=spec, endpoint=endpoint)

    async def post_stop(self, spec: ServerSpec, status: ExitStatus | None) -> None:
        await calling.broadcast(self.pm, "hubkit_post_stop", spec=spec, status=status)

    async def check_new_user(self, name: str) -> str | None:
        refusal = await calling.call_first(self.pm, "hubkit_check_new_user", name=name)
        return str(refusal) if refusal is not None else None

    async def user_created(self, user: UserInfo) -> None:
        await calling.broadcast(self.pm, "hubkit_user_created", user=user)

    async def user_deleted(self, user: UserInfo) -> None:
        await calling.broadcast(self.pm, "hubkit_user_deleted", user=user)

    async def route_changed(self, change: RouteChange) -> None:
        await calling.broadcast(self.pm, "hubkit_route_changed", change=change)
