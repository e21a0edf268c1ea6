"""The hub's exception hierarchy. Plugins and the services raise these; the web layer maps them to HTTP
statuses in one place (:mod:`hubkit.web.errors`)."""

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


class BadRequest(HubkitError):
    """A request the hub refuses as asked (a wrong type, a missing field, a state that forbids it)."""


class InvalidName(BadRequest):
    """A user, group or server name that could not appear safely in a URL path."""


class Forbidden(HubkitError):
    """The caller is known but may not do this (or may not do it this way)."""


class NotAuthenticated(Forbidden):
    """No valid credentials came with the request."""

    def __init__(self, message: str = "Missing or invalid credentials.") -> None:
        super().__init__(message)


class LoginExpired(HubkitError):
    """The user's upstream login has expired: they must log in to the hub again."""


class TooManyRequests(HubkitError):
    """A rate limit refuses the request for ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Unavailable(HubkitError):
    """Something the request needs (an identity provider, a backend) is not answering."""


class NotAllowed(HubkitError):
    """The resource exists but this operation is never possible on it (e.g. deleting a configured service)."""


class Broken(HubkitError):
    """Stored data the hub cannot use (e.g. an auth state no configured key opens): the operator must act."""
