"""Typed configuration. Unknown keys are errors (``extra="forbid"``) so a typo never silently does nothing.

Backend sections (``[spawner.local]``, ``[proxy.hubkit-proxy]``, ``[auth.pam]``) are kept as raw dicts here
and validated by the model the backend's plugin registered, once plugins are loaded.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class HubConfig(_Model):
    ip: str = Field("127.0.0.1", description="Public address (the proxy listens here).")
    port: int = Field(8000, ge=0, le=65535, description="Public port.")
    hub_ip: str = Field("127.0.0.1", description="Address the hub's own web app listens on.")
    hub_port: int = Field(8081, ge=0, le=65535, description="Port of the hub's own web app.")
    hub_connect_url: str | None = Field(
        None,
        description="Hub URL as reachable from user servers (containers, pods); default http://hub_ip:hub_port.",
    )
    base_url: str = Field("/", description="URL prefix of the whole deployment.")
    public_url: str | None = Field(None, description="What browsers use, e.g. https://hub.example.org.")
    subdomain_host: str | None = Field(
        None,
        description="Per-user subdomains (JupyterHub's subdomain_host): the hub's origin, e.g. "
        "https://hub.example.org; each user's servers are then at https://<user>.hub.example.org/user/<user>/, so "
        "one user's pages can never read another's. Needs wildcard DNS and a wildcard TLS certificate.",
    )
    ssl_key: str | None = Field(None, description="TLS key file for the public listener.")
    ssl_cert: str | None = Field(None, description="TLS certificate file for the public listener.")
    db_url: str = Field("sqlite+aiosqlite:///hubkit.sqlite", description="SQLAlchemy async database URL.")
    data_dir: str = Field(".", description="Where the hub keeps its files (cookie secret, pid files, logs).")
    cookie_secret_file: str = Field(
        "hubkit_cookie_secret",
        description="Cookie secret file (relative to data_dir); created 0600 if missing.",
    )
    crypt_keys: list[str] = Field(
        default_factory=list,
        description="Fernet keys for encrypted columns (env HUBKIT_CRYPT_KEY also works).",
    )
    admin_users: list[str] = Field(default_factory=list, description="Users who are always admins.")
    hub_id: str = Field(
        "hubkit", description="Labels external resources so several hubs can share an engine."
    )
    allow_named_servers: bool = Field(True, description="Allow users to run named servers.")
    named_server_limit_per_user: int = Field(0, ge=0, description="0 means no limit.")
    cookie_max_age_days: float = Field(14, gt=0, le=36500, description="Login session lifetime.")
    token_expires_in_max_seconds: int = Field(
        0, ge=0, description="Upper bound for new API tokens (0: none)."
    )
    default_url: str | None = Field(None, description="Landing page inside user servers, e.g. /lab.")
    log_level: str = Field("INFO", description="Logging level.")
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest request body the hub API accepts.")
    login_rate_limit: int = Field(
        10, ge=0, description="Failed logins per (user, client address) per window (0: off)."
    )
    login_rate_limit_per_address: int = Field(
        100,
        ge=0,
        description="Failed logins per client address per window, whatever the names tried (0: off).",
    )
    login_rate_window_seconds: int = Field(300, gt=0, description="Window for login_rate_limit.")
    trusted_proxies: list[str] | None = Field(
        None,
        description="Addresses/networks (CIDR) whose X-Forwarded-For/-Proto/-Host headers are believed. "
        "Default: loopback when a proxy backend is in front, none when the hub faces browsers itself.",
    )
    max_header_bytes: int = Field(
        65536, ge=4096, description="Largest request head (request line + headers) the hub reads; 431 beyond."
    )
    request_head_timeout_seconds: float = Field(
        20,
        gt=0,
        le=3600,
        description="A connection whose request head is not complete this long after it opened (or the head "
        "began) is closed with 408.",
    )

    @field_validator("subdomain_host")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an origin like https://hub.example.org (scheme and host)")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be an origin only (scheme, host, optional port), without a path")
        if parts.hostname.replace(".", "").isdigit() or ":" in parts.hostname:
            raise ValueError("needs a DNS name: an IP address has no subdomains")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
        return value


class AuthConfig(_Model):
    backend: str = Field("dummy", description="Authenticator backend name (see `hubkit plugins`).")
    allowed_users: list[str] = Field(
        default_factory=list, description="If non-empty, only these users may log in."
    )
    blocked_users: list[str] = Field(default_factory=list, description="Users who may never log in.")
    admin_users: list[str] = Field(default_factory=list, description="Users made admin at login.")
    allow_all: bool = Field(True, description="Allow any authenticated user when allowed_users is empty.")
    normalize_usernames: bool = Field(
        True,
        description="Lower-case user names (after Unicode NFC) at login and when users are added, so that "
        "Alice and alice are one account.",
    )
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)


class SpawnerConfig(_Model):
    backend: str = Field(
        "stand-in",
        description="Spawner backend name (see `hubkit plugins`); the default starts stand-in servers, not Jupyter.",
    )
    cmd: list[str] = Field(default_factory=list, description="Server command; empty: the backend's default.")
    args: list[str] = Field(default_factory=list, description="Extra arguments for the server command.")
    environment: dict[str, str] = Field(default_factory=dict, description="Extra environment for servers.")
    concurrent_spawn_limit: int = Field(
        100, ge=0, description="Spawns in progress at once; more wait in a FIFO queue."
    )
    active_server_limit: int = Field(0, ge=0, description="Running servers at once (0: no limit).")
    start_timeout: float = Field(120, gt=0, description="Seconds for the backend to start the server.")
    http_timeout: float = Field(60, gt=0, description="Seconds for the started server to answer HTTP.")
    stop_timeout: float = Field(30, gt=0, description="Seconds for the backend to stop the server.")
    poll_interval: float = Field(30, gt=0, description="Seconds between liveness polls of running servers.")
    consecutive_failure_limit: int = Field(
        0, ge=0, description="Refuse spawns after this many failures in a row (0: off)."
    )
    adopt_concurrency: int = Field(
        20, gt=0, description="Servers re-adopted in parallel after a hub restart."
    )
    reconcile_orphans: str = Field(
        "report", pattern="^(report|remove|off)$", description="What to do with orphans."
    )
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)


class ProxyConfig(_Model):
    backend: str = Field(
        "none", description="Proxy backend name: hubkit-proxy, chp, or none (hub serves alone)."
    )
    check_interval: float = Field(30, gt=0, description="Seconds between route reconciles.")
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)


class CullerConfig(_Model):
    enabled: bool = Field(False, description="Stop idle servers.")
    timeout: float = Field(3600, gt=0, description="Seconds of inactivity before a server is stopped.")
    every: float = Field(300, gt=0, description="Seconds between culler runs.")
    max_age: float = Field(0, ge=0, description="Stop servers older than this many seconds (0: never).")
    spare_busy_kernels: bool = Field(True, description="Never cull a server whose kernel is busy.")
    ignore_open_connections: bool = Field(
        True, description="An open browser tab alone does not count as activity."
    )
    group_timeouts: dict[str, float] = Field(default_factory=dict, description="Per-group idle timeouts.")


SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,99}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOKEN_MIN_LENGTH = 8  # as JupyterHub's


def service_url(value: str | None) -> str | None:
    """A service's address as config and ``POST /services/{name}`` accept it: ``http(s)://host:port``."""
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "url must start with http:// or https:// and name a host, e.g. http://127.0.0.1:10101"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError("url has an invalid port") from None
    if port == 0:
        raise ValueError("url: choose a port (0 is not supported)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            "url must be only scheme://host:port (no path, query or credentials): the service is served "
            "under /services/<name>/ at that address"
        )
    return f"{parts.scheme}://{parts.netloc}"


class ServiceConfig(_Model):
    """One ``[[services]]`` entry: JupyterHub's service fields (``c.JupyterHub.services``), plus who may
    reach it through the hub's OAuth provider (JupyterHub grants that with ``access:services`` in a role)."""

    name: str = Field(
        description="Service name: letters, digits, '.', '_', '~', '-' (it becomes /services/<name>/)."
    )
    admin: bool = Field(False, description="The service's token holds the admin role's scopes.")
    url: str | None = Field(
        None,
        description="Where the service's web server listens (http[s]://host:port); it is routed at "
        "/services/<name>/ and is passed as JUPYTERHUB_SERVICE_URL.",
    )
    api_token: str | None = Field(
        None,
        repr=False,
        description="The service's API token (at least 8 characters; stored hashed). Unset: a managed "
        "service gets a generated one each time the hub starts it.",
    )
    command: list[str] = Field(
        default_factory=list, description="Command the hub runs and keeps running (a managed service)."
    )
    environment: dict[str, str] = Field(
        default_factory=dict, repr=False, description="Extra environment for a managed service."
    )
    cwd: str | None = Field(None, description="Working directory of a managed service.")
    user: str | None = Field(
        None, description="OS account a managed service runs as (the hub must run as root for another one)."
    )
    scopes: list[str] = Field(
        default_factory=list,
        description="Scopes of the service's token, e.g. the culler's list:users, read:users:activity, "
        "read:servers, delete:servers (JupyterHub: a role in load_roles naming the service).",
    )
    display: bool = Field(True, description="List the service on the home page.")
    info: dict[str, Any] = Field(default_factory=dict, description="Free-form information shown in the API.")
    oauth_client_id: str | None = Field(
        None, description="OAuth client id (default service-<name>; must start with service-)."
    )
    oauth_redirect_uri: str | None = Field(
        None, description="OAuth redirect URI (default /services/<name>/oauth_callback when url is set)."
    )
    oauth_client_allowed_scopes: list[str] = Field(
        default_factory=list,
        description="Extra scopes the service may ask for on behalf of a user who logs in to it.",
    )
    oauth_no_confirm: bool = Field(False, description="Skip the consent page when users log in to it.")
    access_all_users: bool = Field(
        False, description="Every user may log in to the service (access:services!service=<name>)."
    )
    access_users: list[str] = Field(default_factory=list, description="Users who may log in to the service.")
    access_groups: list[str] = Field(
        default_factory=list, description="Groups whose members may log in to the service."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SERVICE_NAME_RE.match(value):
            raise ValueError(
                "a service name is 1-100 ASCII letters, digits, '.', '_', '~' or '-', starting with a letter or "
                "digit (it becomes a URL path /services/<name>/ and part of the OAuth client id)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return service_url(value)

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) < TOKEN_MIN_LENGTH or len(value) > 256 or not value.isprintable() or " " in value:
            raise ValueError(
                f"api_token must be {TOKEN_MIN_LENGTH} to 256 printable characters without spaces "
                "(e.g. the output of `openssl rand -hex 32`)"
            )
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        if any(not part or "\x00" in part for part in value):
            raise ValueError("command parts must be non-empty strings without NUL characters")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            if not _ENV_NAME_RE.match(k):
                raise ValueError(f"environment variable name {k[:64]!r} is not valid")
            if "\x00" in v:
                raise ValueError(f"environment variable {k} holds a NUL character")
        return value

    @field_validator("oauth_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("service-") or not SERVICE_NAME_RE.match(value):
            raise ValueError(
                "oauth_client_id must start with 'service-' and use only ASCII letters, digits, '.', '_', '~' or '-'"
            )
        return value

    @field_validator("oauth_redirect_uri")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
        if (
            not (absolute or (not parts.scheme and not parts.netloc and value.startswith("/")))
            or parts.fragment
        ):
            raise ValueError(
                "oauth_redirect_uri must be an http(s) URL or a path starting with '/', without a fragment"
            )
        return value

    @model_validator(mode="after")
    def _managed_fields(self) -> ServiceConfig:
        if not self.command:
            for key in ("environment", "cwd", "user"):
                if getattr(self, key):
                    raise ValueError(
                        f"{key} is set, but it only applies to a managed service (one with a command)"
                    )
        return self

    @property
    def managed(self) -> bool:
        return bool(self.command)


class Settings(_Model):
    hub: HubConfig = Field(default_factory=HubConfig)  # type: ignore[arg-type]
    auth: AuthConfig = Field(default_factory=AuthConfig)  # type: ignore[arg-type]
    spawner: SpawnerConfig = Field(default_factory=SpawnerConfig)  # type: ignore[arg-type]
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)  # type: ignore[arg-type]
    culler: CullerConfig = Field(default_factory=CullerConfig)  # type: ignore[arg-type]
    services: list[ServiceConfig] = Field(
        default_factory=list,
        description="Hub services ([[services]] tables): API clients with their own token, optionally run and "
        "kept running by the hub, routed at /services/<name>/, able to log users in through the hub.",
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Sections of non-backend plugins, validated by their models."
    )

    @field_validator("services")
    @classmethod
    def _distinct_services(cls, value: list[ServiceConfig]) -> list[ServiceConfig]:
        for what, key in (
            ("name", lambda s: s.name),
            ("OAuth client id", lambda s: s.oauth_client_id or f"service-{s.name}"),
            ("api_token", lambda s: s.api_token),
        ):
            seen: dict[str, int] = {}
            for i, svc in enumerate(value):
                k = key(svc)
                if k is None:
                    continue
                if k in seen:
                    shown = "" if what == "api_token" else f" {k!r}"
                    raise ValueError(f"services.{seen[k]} and services.{i} have the same {what}{shown}")
                seen[k] = i
        return value
