"""What a hub service is called and where it lives (client id, prefix, redirect URI, access scopes), and the
environment of a managed service: JupyterHub's variables (compat A2, services) as a pure function."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from ..auth.service_access import access_scope
from ..config.models import ServiceConfig
from ..urls import HubUrls

# inherited from the hub's own environment, as JupyterHub's local process spawner does; nothing else is
ENV_KEEP = (
    "CONDA_DEFAULT_ENV",
    "CONDA_ROOT",
    "JUPYTERHUB_SINGLEUSER_APP",
    "LANG",
    "LC_ALL",
    "LD_LIBRARY_PATH",
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)


def client_id(svc: ServiceConfig) -> str:
    return svc.oauth_client_id or f"service-{svc.name}"


def redirect_uri(urls: HubUrls, svc: ServiceConfig) -> str | None:
    if svc.oauth_redirect_uri:
        return svc.oauth_redirect_uri
    return f"{urls.service_url(svc.name)}oauth_callback" if svc.url else None


def wants_oauth(svc: ServiceConfig) -> bool:
    """A service with a URL, or with any OAuth setting, is an OAuth client (as in JupyterHub)."""
    return bool(
        svc.url
        or svc.oauth_client_id
        or svc.oauth_redirect_uri
        or svc.oauth_no_confirm
        or svc.oauth_client_allowed_scopes
    )


def local_api_url(hub_url: str, base_url: str) -> str:
    """The hub's API as a process on the hub's machine reaches it: a wildcard listen address becomes loopback."""
    parts = urlsplit(hub_url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme or "http", netloc, f"{base_url}hub/api", "", ""))


def build_env(
    svc: ServiceConfig,
    *,
    token: str,
    api_url: str,
    urls: HubUrls,
    inherited: Mapping[str, str] | None = None,
    account: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a managed service: kept variables, the hub's, ``environment``, then its name and
    (with a url) its address, which the hub always decides. ``account`` holds USER/HOME/SHELL when the service
    runs as another OS user."""
    source = os.environ if inherited is None else inherited
    env = {k: source[k] for k in ENV_KEEP if k in source}
    access = json.dumps(["access:services", access_scope(svc.name)])
    public = urls.public_url.rstrip("/")
    prefix = urls.service(svc.name)
    if urls.subdomains:  # on its own host, as JupyterHub puts services with subdomain_host
        public_url, public_hub = urls.service_url(svc.name), f"{urls.subdomain_host}{urls.hub_prefix}"
    else:
        public_url = f"{public}{prefix}" if public else ""
        public_hub = f"{public}{urls.hub_prefix}" if public else ""
    env.update(
        {
            "JUPYTERHUB_API_TOKEN": token,
            "JPY_API_TOKEN": token,
            "JUPYTERHUB_CLIENT_ID": client_id(svc),
            "JUPYTERHUB_API_URL": api_url,
            "JUPYTERHUB_BASE_URL": urls.base_url,
            "JUPYTERHUB_HOST": urls.subdomain_host,
            "JUPYTERHUB_USER": svc.user or "",
            "JUPYTERHUB_SERVER_NAME": "",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": access,
            "JUPYTERHUB_OAUTH_SCOPES": access,
            "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps(svc.oauth_client_allowed_scopes),
            "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
            "JUPYTERHUB_PUBLIC_URL": public_url if svc.url else "",
            "JUPYTERHUB_PUBLIC_HUB_URL": public_hub,
        }
    )
    callback = redirect_uri(urls, svc)
    if callback:
        env["JUPYTERHUB_OAUTH_CALLBACK_URL"] = callback
    env.update(account or {})
    env.update(svc.environment)
    env["JUPYTERHUB_SERVICE_NAME"] = svc.name
    if svc.url:
        env["JUPYTERHUB_SERVICE_URL"] = svc.url
        env["JUPYTERHUB_SERVICE_PREFIX"] = prefix
    return env
