"""``[[services]]`` into the database, at every hub start: one row per service, its configured token (hashed),
its OAuth client. Services that left the config are deleted with their tokens, their OAuth client and the
tokens users got through it. Idempotent, so every hub process sharing a database may run it.

Tokens the supervisor generates for managed services (kind ``service-managed``) are left to the supervisor:
only the process that runs a service may replace the token that service holds.
"""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import scopes as sc
from ..auth.service_access import access_scope
from ..auth.tokens import hash_secret, issue_token
from ..config.models import ServiceConfig
from ..errors import ConfigError
from ..storage.access import Storage
from ..storage.orm import APIToken, OAuthClient, Service
from ..urls import HubUrls
from . import env

log = logging.getLogger("hubkit.services")

CONFIG_TOKEN_KIND = "service"  # the api_token written in [[services]]
MANAGED_TOKEN_KIND = "service-managed"  # generated for a managed service while the hub runs it


def check(services: Sequence[ServiceConfig], urls: HubUrls) -> None:
    """What pydantic cannot check alone: scope names, OS accounts, an OAuth client that has a redirect URI
    and a secret. Raises :class:`ConfigError` naming ``services.<i>.<key>``."""
    for i, svc in enumerate(services):
        for key in ("scopes", "oauth_client_allowed_scopes"):
            try:
                sc.validate(getattr(svc, key))
            except sc.ScopeError as exc:
                raise ConfigError(str(exc), key=f"services.{i}.{key}") from None
        if svc.user:
            try:
                account = pwd.getpwnam(svc.user)
            except KeyError:
                raise ConfigError(f"no OS account named {svc.user!r}", key=f"services.{i}.user") from None
            if os.geteuid() != 0 and account.pw_uid != os.geteuid():
                raise ConfigError(
                    f"the hub runs as uid {os.geteuid()}, not root: it cannot start a service as {svc.user!r}",
                    key=f"services.{i}.user",
                )
        if env.wants_oauth(svc):
            if env.redirect_uri(urls, svc) is None:
                raise ConfigError(
                    "OAuth is configured but there is no redirect URI: set url or oauth_redirect_uri",
                    key=f"services.{i}",
                )
            if not svc.url and svc.api_token is None and not svc.managed:
                raise ConfigError(
                    "an OAuth client needs a secret: set api_token (or command, for a generated one)",
                    key=f"services.{i}",
                )


def _access(svc: ServiceConfig) -> dict[str, object]:
    return {"all": svc.access_all_users, "users": list(svc.access_users), "groups": list(svc.access_groups)}


async def _config_token(session: AsyncSession, i: int, row: Service, svc: ServiceConfig) -> None:
    wanted = hash_secret(svc.api_token) if svc.api_token is not None else None
    stale = delete(APIToken).where(APIToken.service_id == row.id, APIToken.kind == CONFIG_TOKEN_KIND)
    if wanted is not None:
        stale = stale.where(APIToken.hashed != wanted)
    await session.execute(stale)
    if not svc.managed:  # left over from when it was managed by a hub that was killed
        await session.execute(
            delete(APIToken).where(APIToken.service_id == row.id, APIToken.kind == MANAGED_TOKEN_KIND)
        )
    if wanted is None or svc.api_token is None:
        return
    holder = (
        await session.execute(select(APIToken.service_id, APIToken.kind).where(APIToken.hashed == wanted))
    ).one_or_none()
    if holder is None:
        await issue_token(
            session,
            service_id=row.id,
            scopes=["inherit"],
            kind=CONFIG_TOKEN_KIND,
            note="api_token from [[services]]",
            secret=svc.api_token,
        )
    elif holder != (row.id, CONFIG_TOKEN_KIND):
        raise ConfigError(
            "this token is already in use by a user, another service or a server; choose another",
            key=f"services.{i}.api_token",
        )


async def _drop_clients(session: AsyncSession, service_id: int, keep: str | None = None) -> None:
    """Delete the service's OAuth clients (but ``keep``) and the tokens users got through them."""
    query = select(OAuthClient.identifier).where(OAuthClient.service_id == service_id)
    if keep is not None:
        query = query.where(OAuthClient.identifier != keep)
    gone = list((await session.execute(query)).scalars())
    if gone:
        await session.execute(delete(APIToken).where(APIToken.oauth_client.in_(gone)))
        await session.execute(delete(OAuthClient).where(OAuthClient.identifier.in_(gone)))


async def _oauth_client(
    session: AsyncSession, i: int, row: Service, svc: ServiceConfig, urls: HubUrls
) -> None:
    if not env.wants_oauth(svc) or (svc.api_token is None and not svc.managed):
        await _drop_clients(session, row.id)
        return
    ident = env.client_id(svc)
    await _drop_clients(session, row.id, keep=ident)
    client = (
        await session.execute(select(OAuthClient).where(OAuthClient.identifier == ident))
    ).scalar_one_or_none()
    if client is None:
        client = OAuthClient(identifier=ident, secret_hash="")
        session.add(client)
    elif client.service_id != row.id:
        raise ConfigError(f"OAuth client id {ident!r} belongs to another client", key=f"services.{i}")
    if svc.api_token is not None:
        client.secret_hash = hash_secret(svc.api_token)
    # a managed service's generated secret is set by the supervisor each time it starts the service
    client.redirect_uri = env.redirect_uri(urls, svc) or ""
    client.description = f"JupyterHub service {svc.name}"
    client.service_id = row.id
    client.server_id = None
    client.access_scopes = [access_scope(svc.name)]
    client.allowed_scopes = list(svc.oauth_client_allowed_scopes)


async def sync_from_config(storage: Storage, services: Sequence[ServiceConfig], urls: HubUrls) -> None:
    """Make the database hold exactly the configured services (one transaction)."""
    check(services, urls)
    names = [s.name for s in services]
    async with storage.tx() as session:
        rows = {r.name: r for r in (await session.execute(select(Service))).scalars()}
        for i, svc in enumerate(services):
            row = rows.get(svc.name)
            if row is None:
                row = Service(name=svc.name, process={})
                session.add(row)
            elif not row.from_config:
                log.warning(
                    "service %s from the configuration replaces the one created through the API", svc.name
                )
            row.from_config = True
            row.admin = svc.admin
            row.url = svc.url or ""
            row.scopes = list(svc.scopes)
            row.display = svc.display
            row.info = dict(svc.info)
            row.command = list(svc.command)
            row.oauth_no_confirm = svc.oauth_no_confirm
            row.access = _access(svc)
            await session.flush()
            await _config_token(session, i, row, svc)
            await _oauth_client(session, i, row, svc, urls)
        gone = [r for name, r in rows.items() if r.from_config and name not in names]
        for row in gone:
            log.info(
                "service %s is no longer configured: deleting it, its tokens and its OAuth client", row.name
            )
            await _drop_clients(session, row.id)
            await session.execute(delete(APIToken).where(APIToken.service_id == row.id))
            await session.delete(row)
        await session.commit()
    if services:
        log.info(
            "services: %s",
            ", ".join(f"{s.name} ({'managed' if s.managed else 'external'})" for s in services),
        )
