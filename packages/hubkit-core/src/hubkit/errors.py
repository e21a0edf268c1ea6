"""The hub's exception hierarchy. Plugins raise these; the web layer maps them to responses."""

from __future__ import annotations


class HubkitError(Exception):
    """Base class for every error hubkit raises on purpose."""


class ConfigError(HubkitError):
    """Bad configuration: names the file, the key and what was expected. The CLI exits with status 2."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.source = source
        self.key = key
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(HubkitError):
    """A plugin failed; the message names the plugin and its distribution."""

    def __init__(self, plugin: str, message: str, *, distribution: str | None = None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        who = f"plugin {plugin!r}" + (f" (distribution {distribution})" if distribution else "")
        super().__init__(f"{who}: {message}")


class UnknownBackend(ConfigError):
    """A backend name in config that no installed plugin registered."""


class AuthFailed(HubkitError):
    """Definite refusal of a login. The message is safe to show (it never says whether an account exists)."""


class InvalidOptions(HubkitError):
    """Spawn options that fail server-side validation."""


class SpawnFailed(HubkitError):
    """A spawn that ended in failure. ``reason_code`` is machine-readable, the message is for people."""

    def __init__(self, message: str, *, reason_code: str = "spawn-failed") -> None:
        self.reason_code = reason_code
        super().__init__(message)


class SpawnTimeout(SpawnFailed):
    def __init__(self, message: str, *, phase: str) -> None:
        self.phase = phase
        super().__init__(message, reason_code=f"timeout-{phase}")


class LimitReached(HubkitError):
    """A per-user or hub-wide limit (named servers, active servers) refuses a request."""


class ProxyError(HubkitError):
    """The proxy's API failed or is unreachable."""


class NotFound(HubkitError):
    """A user, server, group or token that does not exist."""


class Conflict(HubkitError):
    """The request conflicts with current state (exists already, server still running...)."""
