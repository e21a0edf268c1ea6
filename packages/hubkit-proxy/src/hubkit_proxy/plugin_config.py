"""The routing plugin's options (``[proxy.chp]``, ``[proxy.hubkit-proxy]`` in the hub's config) and API secret."""

from __future__ import annotations

import os
import secrets
from typing import Any

from pydantic import BaseModel, Field, model_validator

TOKEN_FILE = "proxy-auth-token"
REPLICA_SOURCES = "hubkit.proxy_replicas"
"""Entry-point group of replica sources: ``name = "module:factory"``, ``factory(options, hub) -> ReplicaSource``
(``plugin.ReplicaSource``)."""


class ChpConfig(BaseModel):
    """Options shared by both backends (``[proxy.chp]`` / ``[proxy.hubkit-proxy]``)."""

    model_config = {"extra": "forbid"}

    should_start: bool = Field(
        True,
        description="Launch the proxy as a child process that outlives the hub; false = it is run externally.",
    )
    api_url: str = Field(
        "http://127.0.0.1:8001",
        description="The proxy's REST API URL. Port 0 (hubkit-proxy only): the proxy picks a free port and "
        "reports it back.",
    )
    auth_token: str | None = Field(
        None,
        repr=False,
        description="API secret; else env CONFIGPROXY_AUTH_TOKEN, else generated and kept 0600 in the data dir.",
    )
    command: list[str] | None = Field(None, description="Command to launch (default: the backend's proxy).")
    extra_args: list[str] = Field(default_factory=list, description="Extra command-line flags for the proxy.")
    pid_file: str | None = Field(
        None, description="Pid file of the embedded proxy (default: in the data dir)."
    )
    log_file: str | None = Field(
        None, description="stdout/stderr of the embedded proxy (default: in the data dir)."
    )
    host_routing: bool = Field(
        False, description="Routespecs start with a host; on by itself when the hub has [hub] subdomain_host."
    )
    start_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a launched proxy's API.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds per API request.")
    retry_seconds: float = Field(30.0, ge=0, description="Total seconds to retry connection errors and 5xx.")
    restart_on_exit: bool = Field(
        True,
        description="Restart the embedded proxy the moment its process exits (its exit is watched, not polled).",
    )
    proxy_timeout_ms: int | None = Field(None, description="--proxy-timeout passed to the proxy (ms).")


class HubkitProxyConfig(ChpConfig):
    """Options of the ``hubkit-proxy`` backend."""

    replicas: list[str] = Field(
        default_factory=list,
        description="API URLs of further replicas serving the same table; every change is pushed to all of them.",
    )
    state_file: str | None = Field(
        None,
        description="Route journal of the embedded proxy (default: in the data dir); restores routes at start.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Data-plane processes sharing the public port (SO_REUSEPORT) behind one API/journal master; "
        "more than 1 only pays with spare cores.",
    )
    standby: bool = Field(
        True,
        description="Keep a warm standby process (imported and waiting, about 16 MiB) that takes over the moment "
        "the embedded proxy exits, so routes answer again without waiting for a Python start.",
    )
    hub_targets: list[str] = Field(
        default_factory=list,
        description="Further hub processes serving this hub (replicas): the default route sends each request "
        "to a healthy one, and moves on at once from one that refuses connections.",
    )
    health_check_interval_ms: int = Field(
        1000, gt=0, description="How often each hub target's health endpoint is probed (with hub_targets)."
    )
    health_check_timeout_ms: int = Field(1000, gt=0, description="How long a probe may take before it fails.")
    fail_timeout_ms: int = Field(
        10000,
        gt=0,
        description="How long a hub target that refused a connection is skipped (unless a probe passes).",
    )
    discovery: str | None = Field(
        None,
        description=f"Find the replicas at run time instead of listing them: a replica source from entry-point "
        f"group '{REPLICA_SOURCES}' (hubkit-spawn-k8s: 'kubernetes', the EndpointSlices of a Service). "
        "Replaces api_url and replicas; needs should_start = false.",
    )
    discovery_options: dict[str, Any] = Field(default_factory=dict, description="Options of that replica source.")

    @model_validator(mode="after")
    def _discovery_is_external(self) -> HubkitProxyConfig:
        if self.discovery and self.should_start:
            raise ValueError("discovery finds externally run replicas: set should_start = false")
        return self


def api_token(configured: str | None, data_dir: str) -> str:
    """The route API's secret: configured, else env CONFIGPROXY_AUTH_TOKEN, else generated once and kept 0600 in
    the data dir (so a restarted hub, and the proxy that outlived it, share it)."""
    if configured:
        return configured
    env = os.environ.get("CONFIGPROXY_AUTH_TOKEN")
    if env:
        return env
    path = os.path.join(data_dir, TOKEN_FILE)
    try:
        with open(path) as fh:
            token = fh.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    os.makedirs(data_dir, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token
