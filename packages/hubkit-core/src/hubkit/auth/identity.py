"""Who is calling: resolve a request's token header or hub session cookie to an :class:`Identity`.

The result is a plain value object (no ORM rows escape), cached on the request, so handlers can open their
own DB sessions freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import noload, selectinload
from starlette.requests import HTTPConnection

from ..storage.orm import Server, Service, User
from . import scopes as sc
from .sessions import read_session
from .tokens import lookup_token

if TYPE_CHECKING:
    from ..runtime.hub import Hub

_AUTH_RE = re.compile(r"^\s*(token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    kind: str  # "user" | "service"
    name: str
    id: int
    admin: bool
    scopes: sc.Scopes = field(repr=False)
    groups: tuple[str, ...] = ()
    via: str = "token"  # "token" | "cookie"
    token_id: int | None = None
    token_kind: str | None = None
    session_id: str | None = None
    oauth_client: str | None = None


def header_token(conn: HTTPConnection) -> str | None:
    raw = conn.headers.get("authorization")
    if not raw:
        return None
    m = _AUTH_RE.match(raw)
    return m.group(2) if m else ""


async def _user_identity(hub: Hub, session_id: str | None, user: User, **kw: object) -> Identity:
    return Identity(
        kind="user",
        name=user.name,
        id=user.id,
        admin=user.admin,
        groups=tuple(g.name for g in user.groups),
        scopes=sc.owner_scopes(user.name, admin=user.admin),
        session_id=session_id,
        **kw,  # type: ignore[arg-type]
    )


async def from_token(hub: Hub, secret: str) -> Identity | None:
    async with hub.db() as session:
        row = await lookup_token(session, secret)
        if row is None:
            await session.commit()  # expired rows deleted on sight
            return None
        requested = list(row.scopes or [])
        if row.kind == "server" and not requested:
            requested = list(sc.ROLES["server"])
        if row.user_id is not None:
            user = (
                await session.execute(
                    select(User)
                    .where(User.id == row.user_id)
                    .options(noload(User.servers), selectinload(User.groups))
                )
            ).scalar_one_or_none()
            if user is None:
                return None
            server_name = None
            if row.server_id is not None:
                server_name = (
                    await session.execute(select(Server.name).where(Server.id == row.server_id))
                ).scalar_one_or_none()
            owner = sc.owner_scopes(user.name, admin=user.admin)
            granted = sc.token_scopes(requested, owner=user.name, owner_all=owner, server=server_name)
            return Identity(
                kind="user",
                name=user.name,
                id=user.id,
                admin=user.admin,
                groups=tuple(g.name for g in user.groups),
                scopes=granted,
                token_id=row.id,
                token_kind=row.kind,
                session_id=row.session_id,
                oauth_client=row.oauth_client,
            )
        if row.service_id is not None:
            svc = await session.get(Service, row.service_id)
            if svc is None:
                return None
            owner = sc.owner_scopes(svc.name, admin=svc.admin, kind="service", extra=svc.scopes or [])
            granted = sc.token_scopes(requested, owner=svc.name, owner_all=owner, kind="service")
            return Identity(
                kind="service",
                name=svc.name,
                id=svc.id,
                admin=svc.admin,
                scopes=granted,
                token_id=row.id,
                token_kind=row.kind,
                session_id=row.session_id,
            )
    return None


async def from_cookie(hub: Hub, conn: HTTPConnection) -> Identity | None:
    sess = read_session(hub, conn)
    if sess is None:
        return None
    async with hub.db() as session:
        user = (
            await session.execute(
                select(User)
                .where(User.id == sess.user_id)
                .options(noload(User.servers), selectinload(User.groups))
            )
        ).scalar_one_or_none()
        if user is None or user.cookie_id != sess.cookie_id:
            return None
        return await _user_identity(hub, sess.session_id, user, via="cookie")


async def resolve(hub: Hub, conn: HTTPConnection, *, allow_cookie: bool = True) -> Identity | None:
    """Token header first (an invalid header means anonymous, never a cookie fallback), then the cookie."""
    cached = conn.scope.get("hubkit.identity", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    secret = header_token(conn)
    ident: Identity | None
    if secret is not None:
        ident = await from_token(hub, secret) if secret else None
    elif allow_cookie:
        ident = await from_cookie(hub, conn)
    else:
        ident = None
    conn.scope["hubkit.identity"] = ident
    return ident
