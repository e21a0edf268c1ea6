"""Typed configuration. Unknown keys are errors (``extra="forbid"``) so a typo never silently does nothing.

Backend sections (``[spawner.local]``, ``[proxy.hubkit-proxy]``, ``[auth.pam]``) are kept as raw dicts here
and validated by the model the backend's plugin registered, once plugins are loaded.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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


class Settings(_Model):
    hub: HubConfig = Field(default_factory=HubConfig)  # type: ignore[arg-type]
    auth: AuthConfig = Field(default_factory=AuthConfig)  # type: ignore[arg-type]
    spawner: SpawnerConfig = Field(default_factory=SpawnerConfig)  # type: ignore[arg-type]
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)  # type: ignore[arg-type]
    culler: CullerConfig = Field(default_factory=CullerConfig)  # type: ignore[arg-type]
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Sections of non-backend plugins, validated by their models."
    )
