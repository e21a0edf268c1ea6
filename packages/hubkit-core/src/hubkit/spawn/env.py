"""The single-user environment contract (JupyterHub compat section A2), as a pure function of the hub's URLs.

Backends choose the server's address, so they finish the environment with
:meth:`hubkit.interfaces.ServerSpec.env_with_url`; the credentials behind the token live in :mod:`.credentials`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from ..urls import HubUrls, quote_name

CLIENT_ID_MAX = 255  # the width of the OAuth client columns


def client_id(user: str, server_name: str = "") -> str:
    """JupyterHub's ``jupyterhub-user-<user>[-<server>]``; names of the longest allowed length (and percent-encoded
    ones) would not fit the client columns, so a long id keeps a readable head and ends in a digest of the pair."""
    cid = f"jupyterhub-user-{quote_name(user)}"
    cid = f"{cid}-{quote_name(server_name)}" if server_name else cid
    if len(cid) <= CLIENT_ID_MAX:
        return cid
    digest = hashlib.sha256(f"{user}\0{server_name}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{cid[: CLIENT_ID_MAX - len(digest) - 1]}-{digest}"


def access_scopes(user: str, server_name: str = "") -> list[str]:
    """Who may use the server: its owner (and anyone granted access to it)."""
    return [f"access:servers!server={user}/{server_name}", f"access:servers!user={user}"]


def server_token_scopes(user: str, server_name: str = "") -> list[str]:
    return [
        f"users:activity!user={user}",
        f"access:servers!server={user}/{server_name}",
        f"read:users:activity!user={user}",
    ]


def build_env(urls: HubUrls, user: str, server_name: str, token: str) -> dict[str, str]:
    """Every JUPYTERHUB_* variable except ``JUPYTERHUB_SERVICE_URL`` (it needs the port the backend picks).

    With per-user subdomains, as JupyterHub: ``JUPYTERHUB_HOST`` is the hub's origin (the server sends browsers
    there to log in), the OAuth callback and public URL are absolute on the owner's host."""
    prefix = urls.server(user, server_name)
    api = urls.hub_api_url
    scopes = json.dumps(access_scopes(user, server_name))
    if urls.subdomains:
        public = urls.server_url(user, server_name)
        public_hub = f"{urls.subdomain_host}{urls.hub_prefix}"
    elif urls.public_url:
        public = f"{urls.public_url.rstrip('/')}{prefix}"
        public_hub = f"{urls.public_url.rstrip('/')}{urls.hub_prefix}"
    else:
        public = public_hub = ""
    env = {
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": client_id(user, server_name),
        "JUPYTERHUB_API_URL": api,
        "JUPYTERHUB_ACTIVITY_URL": f"{api}/users/{quote_name(user)}/activity",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_BASE_URL": urls.base_url,
        "JUPYTERHUB_HOST": urls.subdomain_host,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{urls.server_url(user, server_name)}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_PUBLIC_URL": public,
        "JUPYTERHUB_PUBLIC_HUB_URL": public_hub,
    }
    if urls.default_url:
        env["JUPYTERHUB_DEFAULT_URL"] = urls.default_url
    return env


def merged_env(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Configured ``[spawner] environment`` wins over the hub's variables, as in JupyterHub."""
    return {**base, **extra}
