"""A server's credentials: a fresh hub token per start (kind ``server``, stored hashed, revoked at stop) and
an OAuth client row whose secret is that token, which is what stock ``jupyterhub-singleuser`` expects.

Three statements per start (:mod:`.statements`), in the caller's transaction: delete the old token, insert the
new one, and insert or update the client in one ``INSERT ... ON CONFLICT (identifier) DO UPDATE``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.tokens import hash_secret, new_secret, token_values
from ..storage.orm import APIToken, OAuthClient
from . import statements as sql
from .env import access_scopes, client_id, server_token_scopes

SERVER_TOKEN_KIND = "server"


async def issue_server_credentials(
    session: AsyncSession,
    *,
    user_id: int,
    server_id: int,
    user: str,
    server_name: str,
    prefix: str,
    url: str | None = None,
) -> str:
    """A fresh server token plus the server's OAuth client (secret = that token). Not committed.
    ``url`` is where browsers reach the server (absolute with per-user subdomains; default ``prefix``): its
    OAuth callback is registered there."""
    url = url or prefix
    await session.execute(sql.DELETE_SERVER_TOKEN, {"server_id": server_id})
    token = new_secret()
    await session.execute(
        sql.NEW_TOKEN,
        token_values(
            token,
            user_id=user_id,
            server_id=server_id,
            scopes=server_token_scopes(user, server_name),
            kind=SERVER_TOKEN_KIND,
            note=f"server token for {user}/{server_name}",  # names, not the percent-encoded prefix: fits the column
        ),
    )
    dialect = session.bind.dialect.name if session.bind is not None else ""
    await session.execute(
        sql.UPSERT_CLIENT["postgresql" if dialect == "postgresql" else "sqlite"],
        {
            "identifier": client_id(user, server_name),
            "created": datetime.now(UTC),
            "secret_hash": hash_secret(token),
            "redirect_uri": f"{url}oauth_callback",
            "description": f"Server at {url}",
            "server_id": server_id,
            "access_scopes": access_scopes(user, server_name),
            "allowed_scopes": [],
        },
    )
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
