"""The JUPYTERHUB_* environment a hub gives its servers (docs/singleuser.md), parsed once and validated."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class HubEnvError(RuntimeError):
    """The environment lacks something the contract requires; the message says what and why."""


def _json_list(raw: str, name: str) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise HubEnvError(f"{name} must be a JSON list of scope strings, got {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HubEnvError(f"{name} must be a JSON list of scope strings, got {raw!r}")
    return value


# How long the hub's answer about a token is trusted: also how long a hub logout (which revokes the browser's
# OAuth token at the hub) takes to reach this server. JupyterHub's singleuser trusts it for 300 s.
DEFAULT_AUTH_CACHE_SECONDS = 10.0


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HubEnvError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 86400:
        raise HubEnvError(f"{name} must be between 0 and 86400 seconds, got {raw!r}")
    return value


def _slash(path: str) -> str:
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return path if path.endswith("/") else path + "/"


@dataclass(frozen=True)
class HubEnv:
    api_token: str
    api_url: str  # no trailing slash
    client_id: str
    service_prefix: str  # /user/alice/
    bind_ip: str
    bind_port: int
    user: str
    server_name: str
    base_url: str  # the hub deployment's base url, "/"
    host: str  # public origin for browser redirects ("" = same origin)
    oauth_callback_url: str
    access_scopes: tuple[str, ...]
    activity_url: str
    activity_interval: float
    allow_token_in_url: bool
    default_url: str
    root_dir: str
    cookie_secure: bool
    auth_cache_seconds: float = DEFAULT_AUTH_CACHE_SECONDS

    @property
    def hub_prefix(self) -> str:
        return self.base_url + "hub/"

    @property
    def authorize_url(self) -> str:
        return f"{self.host}{self.hub_prefix}api/oauth2/authorize"

    @property
    def logout_url(self) -> str:
        return f"{self.host}{self.hub_prefix}logout"

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> HubEnv:
        e = os.environ if env is None else env
        missing = [
            k
            for k in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID")
            if not e.get(k)
        ]
        if missing:
            raise HubEnvError(
                "not started by a hub: missing "
                + ", ".join(missing)
                + " (the hub sets these; see docs/singleuser.md)"
            )
        svc = urlsplit(e["JUPYTERHUB_SERVICE_URL"])
        if svc.scheme not in ("http", "https") or svc.port is None:
            raise HubEnvError(
                f"JUPYTERHUB_SERVICE_URL must be http(s)://ip:port/prefix/, got {svc.geturl()!r}"
            )
        prefix = _slash(e.get("JUPYTERHUB_SERVICE_PREFIX") or svc.path or "/")
        scopes = _json_list(
            e.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES") or e.get("JUPYTERHUB_OAUTH_SCOPES", ""),
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
        )
        try:
            interval = float(e.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)
        except ValueError:
            raise HubEnvError("JUPYTERHUB_ACTIVITY_INTERVAL must be a number of seconds") from None
        if interval <= 0:
            raise HubEnvError("JUPYTERHUB_ACTIVITY_INTERVAL must be positive")
        cache = _seconds(e, "HUBKIT_SINGLEUSER_AUTH_CACHE_SECONDS", DEFAULT_AUTH_CACHE_SECONDS)
        public = e.get("JUPYTERHUB_PUBLIC_URL", "")
        return cls(
            api_token=e["JUPYTERHUB_API_TOKEN"],
            api_url=(e.get("JUPYTERHUB_API_URL") or "http://127.0.0.1:8081/hub/api").rstrip("/"),
            client_id=e["JUPYTERHUB_CLIENT_ID"],
            service_prefix=prefix,
            bind_ip=svc.hostname or "",
            bind_port=svc.port or (443 if svc.scheme == "https" else 80),
            user=e.get("JUPYTERHUB_USER", ""),
            server_name=e.get("JUPYTERHUB_SERVER_NAME", ""),
            base_url=_slash(e.get("JUPYTERHUB_BASE_URL", "/")),
            host=e.get("JUPYTERHUB_HOST", "").rstrip("/"),
            oauth_callback_url=e.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback",
            access_scopes=tuple(scopes),
            activity_url=e.get("JUPYTERHUB_ACTIVITY_URL", ""),
            activity_interval=interval,
            allow_token_in_url=e.get("JUPYTERHUB_ALLOW_TOKEN_IN_URL", "").lower() in ("1", "true", "yes"),
            default_url=e.get("JUPYTERHUB_DEFAULT_URL", ""),
            root_dir=os.path.expanduser(e.get("JUPYTERHUB_ROOT_DIR", "")),
            cookie_secure=public.startswith("https:"),
            auth_cache_seconds=cache,
        )
