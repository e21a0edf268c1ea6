"""The single-user environment contract (JupyterHub compat section A2) and the credentials behind it.

Each start gets a fresh server token (kind ``server``, stored hashed, revoked at stop) and an OAuth client
row whose secret is that token, which is what stock ``jupyterhub-singleuser`` expects. Backends choose the
port, so they finish the environment with :func:`env_with_url`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.tokens import hash_secret, issue_token
from ..interfaces import ServerSpec
from ..storage.orm import APIToken, OAuthClient

SERVER_TOKEN_KIND = "server"


def _q(name: str) -> str:
    return quote(name, safe="@~")


def normalize_base_url(base_url: str) -> str:
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


@dataclass(frozen=True)
class HubUrls:
    """The hub addresses a user server needs."""

    base_url: str  # "/" or "/prefix/"
    hub_connect_url: str  # e.g. http://127.0.0.1:8081 (no trailing slash)
    public_url: str = ""  # e.g. https://hub.example.org ("" when unset)
    default_url: str | None = None

    @property
    def hub_api_url(self) -> str:
        return f"{self.hub_connect_url.rstrip('/')}{self.base_url}hub/api"


def server_prefix(base_url: str, user: str, server_name: str = "") -> str:
    prefix = f"{normalize_base_url(base_url)}user/{_q(user)}/"
    return f"{prefix}{_q(server_name)}/" if server_name else prefix


def client_id(user: str, server_name: str = "") -> str:
    cid = f"jupyterhub-user-{_q(user)}"
    return f"{cid}-{_q(server_name)}" if server_name else cid


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
    """Every JUPYTERHUB_* variable except ``JUPYTERHUB_SERVICE_URL`` (needs the port: :func:`env_with_url`)."""
    prefix = server_prefix(urls.base_url, user, server_name)
    api = urls.hub_api_url
    scopes = json.dumps(access_scopes(user, server_name))
    env = {
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": client_id(user, server_name),
        "JUPYTERHUB_API_URL": api,
        "JUPYTERHUB_ACTIVITY_URL": f"{api}/users/{_q(user)}/activity",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_BASE_URL": urls.base_url,
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_PUBLIC_URL": f"{urls.public_url.rstrip('/')}{prefix}" if urls.public_url else "",
        "JUPYTERHUB_PUBLIC_HUB_URL": (
            f"{urls.public_url.rstrip('/')}{urls.base_url}hub/" if urls.public_url else ""
        ),
    }
    if urls.default_url:
        env["JUPYTERHUB_DEFAULT_URL"] = urls.default_url
    return env


def env_with_url(spec: ServerSpec, ip: str, port: int, *, proto: str = "http") -> dict[str, str]:
    """For backends: the spec's environment plus ``JUPYTERHUB_SERVICE_URL`` for the address they chose.

    ``ip`` is where the server binds (``""`` or ``0.0.0.0`` for all interfaces, as in containers)."""
    env = dict(spec.env)
    env["JUPYTERHUB_SERVICE_URL"] = f"{proto}://{ip}:{port}{spec.url_prefix}"
    return env


async def issue_server_credentials(
    session: AsyncSession, *, user_id: int, server_id: int, user: str, server_name: str, prefix: str
) -> str:
    """A fresh server token plus the server's OAuth client (secret = that token). Flushed, not committed."""
    await revoke_server_credentials(session, server_id, keep_client=True)
    token, _row = await issue_token(
        session,
        user_id=user_id,
        server_id=server_id,
        scopes=server_token_scopes(user, server_name),
        kind=SERVER_TOKEN_KIND,
        note=f"server token for {prefix}",
    )
    ident = client_id(user, server_name)
    client = (
        await session.execute(select(OAuthClient).where(OAuthClient.identifier == ident))
    ).scalar_one_or_none()
    if client is None:
        client = OAuthClient(identifier=ident)
        session.add(client)
    client.secret_hash = hash_secret(token)
    client.redirect_uri = f"{prefix}oauth_callback"
    client.description = f"Server at {prefix}"
    client.server_id = server_id
    client.access_scopes = access_scopes(user, server_name)
    client.allowed_scopes = []
    await session.flush()
    return token


async def revoke_server_credentials(
    session: AsyncSession, server_id: int, *, keep_client: bool = False
) -> None:
    """Revoke the server token; unless ``keep_client``, delete the OAuth client and tokens issued to it."""
    await session.execute(
        delete(APIToken).where(APIToken.server_id == server_id, APIToken.kind == SERVER_TOKEN_KIND)
    )
    if keep_client:
        return
    idents = (
        (await session.execute(select(OAuthClient.identifier).where(OAuthClient.server_id == server_id)))
        .scalars()
        .all()
    )
    if idents:
        await session.execute(delete(APIToken).where(APIToken.oauth_client.in_(idents)))
        await session.execute(delete(OAuthClient).where(OAuthClient.server_id == server_id))


def merged_env(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Configured ``[spawner] environment`` wins over the hub's variables, as in JupyterHub."""
    return {**base, **extra}
