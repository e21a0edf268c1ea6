"""A server's credentials: a fresh hub token per start (kind ``server``, stored hashed, revoked at stop) and
an OAuth client row whose secret is that token, which is what stock ``jupyterhub-singleuser`` expects."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.tokens import hash_secret, issue_token
from ..storage.orm import APIToken, OAuthClient
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
    """A fresh server token plus the server's OAuth client (secret = that token). Flushed, not committed.
    ``url`` is where browsers reach the server (absolute with per-user subdomains; default ``prefix``): its
    OAuth callback is registered there."""
    url = url or prefix
    await revoke_server_credentials(session, server_id, keep_client=True)
    token, _row = await issue_token(
        session,
        user_id=user_id,
        server_id=server_id,
        scopes=server_token_scopes(user, server_name),
        kind=SERVER_TOKEN_KIND,
        note=f"server token for {user}/{server_name}",  # names, not the percent-encoded prefix: fits the column
    )
    ident = client_id(user, server_name)
    client = (
        await session.execute(select(OAuthClient).where(OAuthClient.identifier == ident))
    ).scalar_one_or_none()
    if client is None:
        client = OAuthClient(identifier=ident)
        session.add(client)
    client.secret_hash = hash_secret(token)
    client.redirect_uri = f"{url}oauth_callback"
    client.description = f"Server at {url}"
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
