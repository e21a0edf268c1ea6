"""Build the one backend per role that config names, with its section validated by the plugin's model, check it
against its protocol, and register it with the hub's plugin manager when it implements runtime hooks."""

from __future__ import annotations

import inspect
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from ..config.models import Settings
from ..errors import ConfigError, PluginError
from ..interfaces import Authenticator, LoginKind, ProxyBackend, RedirectAuthenticator, SpawnerBackend
from ..plugins.hooks import Registries
from ..plugins.manager import PluginHost
from ..plugins.registry import BackendRegistry, HubInfo

T = TypeVar("T")


def describe_validation(exc: ValidationError, prefix: str) -> tuple[str, str]:
    """(dotted key, what was expected) for the first error."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    key = f"{prefix}.{loc}" if loc else prefix
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    return key, msg


def validate_backend_config(registry: BackendRegistry[Any], name: str, section: dict[str, Any]) -> BaseModel:
    entry = registry.get(name)  # UnknownBackend lists the installed names
    try:
        return entry.config_model.model_validate(section)
    except ValidationError as exc:
        key, msg = describe_validation(exc, f"{registry.role}.{name}")
        raise ConfigError(msg, key=key) from None


def protocol_members(protocol: type) -> dict[str, bool]:
    """The members a protocol declares (its own and its protocol bases'): name -> must be ``async def``."""
    out: dict[str, bool] = {}
    for base in reversed(protocol.__mro__):
        if base in (object, Protocol, Generic) or not getattr(base, "_is_protocol", False):
            continue
        for name in getattr(base, "__annotations__", {}):
            if not name.startswith("_"):
                out[name] = False
        for name, value in vars(base).items():
            if not name.startswith("_") and callable(value):
                out[name] = inspect.iscoroutinefunction(value)
    return out


def check_against(protocol: type, instance: object, what: str, plugin: str, distribution: str | None) -> None:
    """Fail startup when ``instance`` lacks a member of ``protocol`` (or has a sync one where async is due)."""
    missing = []
    not_async = []
    for name, must_be_async in protocol_members(protocol).items():
        if not hasattr(instance, name):
            missing.append(name)
        elif must_be_async and not inspect.iscoroutinefunction(getattr(instance, name)):
            not_async.append(name)
    contract = f"hubkit.interfaces.{protocol.__name__}"
    if missing:
        raise PluginError(
            plugin, f"{what} does not implement {', '.join(missing)} of {contract}", distribution=distribution
        )
    if not_async:
        raise PluginError(
            plugin,
            f"{what}: {', '.join(not_async)} of {contract} must be async def",
            distribution=distribution,
        )


def protocol_for(role: str, instance: object) -> type:
    if role == "auth":
        kind = getattr(instance, "login_kind", None)
        return RedirectAuthenticator if kind == LoginKind.REDIRECT else Authenticator
    return SpawnerBackend if role == "spawner" else ProxyBackend


def build_backend(
    registry: BackendRegistry[T], name: str, sections: dict[str, dict[str, Any]], hub: HubInfo
) -> T:
    """Construct the backend ``name`` with its validated ``[role.<name>]`` section."""
    config = validate_backend_config(registry, name, sections.get(name, {}))
    return registry.get(name).factory(config=config, hub=hub)


def instantiate(
    pm: PluginHost, registry: BackendRegistry[T], name: str, sections: dict[str, dict[str, Any]], hub: HubInfo
) -> T:
    """The hub's backend for a role: built, checked against its protocol, and registered with the hub's plugin
    manager when it implements runtime hooks (so they reach this instance and its configuration)."""
    entry = registry.get(name)
    distribution = pm.distribution_of(entry.plugin)
    try:
        instance = build_backend(registry, name, sections, hub)
    except (ConfigError, PluginError):
        raise
    except Exception as exc:
        raise PluginError(
            entry.plugin,
            f"building {registry.role} backend {name!r} failed: {exc!r}",
            distribution=distribution,
        ) from exc
    what = f"{registry.role} backend {name!r} ({type(instance).__qualname__})"
    check_against(protocol_for(registry.role, instance), instance, what, entry.plugin, distribution)
    pm.register_instance(instance, f"{registry.role}:{name}", distribution or "?")
    return instance


def validate_sections(settings: Settings, registries: Registries) -> None:
    """Every backend name and every ``[role.<name>]`` / ``[plugins.<name>]`` section must be known."""
    roles: tuple[tuple[Any, BackendRegistry[Any]], ...] = (
        (settings.auth, registries.authenticators),
        (settings.spawner, registries.spawners),
        (settings.proxy, registries.proxies),
    )
    for section, registry in roles:
        registry.get(section.backend)
        for name, values in section.backends.items():
            if name not in registry.names():
                installed = ", ".join(registry.names()) or "none"
                raise ConfigError(
                    f"section for unknown {registry.role} backend {name!r}; installed: {installed}",
                    key=f"{registry.role}.{name}",
                )
            validate_backend_config(registry, name, values)
    known = registries.config_sections.sections
    for name, values in settings.plugins.items():
        model = known.get(name)
        if model is None:
            raise ConfigError(
                f"no installed plugin declares this section; known: {', '.join(sorted(known)) or 'none'}",
                key=f"plugins.{name}",
            )
        try:
            model.model_validate(values)
        except ValidationError as exc:
            key, msg = describe_validation(exc, f"plugins.{name}")
            raise ConfigError(msg, key=key) from None


def plugin_config(settings: Settings, registries: Registries, name: str) -> BaseModel:
    """The validated ``[plugins.<name>]`` section (defaults when absent)."""
    model = registries.config_sections.sections[name]
    return model.model_validate(settings.plugins.get(name, {}))
