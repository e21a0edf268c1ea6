"""Build the one backend per role that config names, with its section validated by the plugin's model."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..plugins.registry import BackendRegistry, HubInfo


def describe_validation(exc: ValidationError, prefix: str) -> tuple[str, str]:
    """(dotted key, what was expected) for the first error."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    key = f"{prefix}.{loc}" if loc else prefix
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    return key, msg


def validate_backend_config(registry: BackendRegistry[Any], name: str, section: dict[str, Any]) -> Any:
    entry = registry.get(name)  # UnknownBackend lists the installed names
    try:
        return entry.config_model.model_validate(section)
    except ValidationError as exc:
        key, msg = describe_validation(exc, f"{registry.role}.{name}")
        raise ConfigError(msg, key=key) from None


def build_backend(
    registry: BackendRegistry[Any], name: str, sections: dict[str, dict[str, Any]], hub: HubInfo
) -> Any:
    config = validate_backend_config(registry, name, sections.get(name, {}))
    return registry.get(name).factory(config=config, hub=hub)


def validate_sections(settings: Any, registries: Any) -> None:
    """Every backend name and every ``[role.<name>]`` / ``[plugins.<name>]`` section must be known."""
    roles = (
        ("auth", settings.auth, registries.authenticators),
        ("spawner", settings.spawner, registries.spawners),
        ("proxy", settings.proxy, registries.proxies),
    )
    for _role, section, registry in roles:
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


def plugin_config(settings: Any, registries: Any, name: str) -> Any:
    """The validated ``[plugins.<name>]`` section (defaults when absent)."""
    model = registries.config_sections.sections[name]
    return model.model_validate(settings.plugins.get(name, {}))
