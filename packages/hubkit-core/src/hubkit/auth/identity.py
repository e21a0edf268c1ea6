"""Who is calling: a token or a hub login session resolved to an :class:`Identity`.

The result is a plain value object (no ORM rows escape), so handlers can open their own DB sessions freely.
Reading the token header and the session cookie off a request is the web layer's job
(:mod:`hubkit.web.caller`); this module only needs the secret or the session. Token resolution runs on every
API request: a per-token cache (with invalidation on revocation, expiry and role changes) would go in
:func:`from_token`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import noload, selectinload

from ..storage.access import Storage
from ..storage.orm import APIToken, Group, Server, Service, User, user_group
from . import scopes as sc
from . import service_access
from .jupyterhub_tokens import find_imported
from .sessions import Session
from .tokens import hash_secret

TOKEN_ACTIVITY_RESOLUTION = timedelta(minutes=5)
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


def header_token(raw: str | None) -> str | None:
    """The secret of an ``Authorization: token ...`` (or ``bearer``) header; ``""`` for a malformed one."""
    if not raw:
        return None
    m = _AUTH_RE.match(raw)
    return m.group(2) if m else ""


def _user_identity(session_id: str | None, user: User, **kw: object) -> Identity:
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


async def from_token(storage: Storage, secret: str) -> Identity | None:
    """One indexed query for the token with its owner's name/admin flag (and the server's name for server
    tokens): this runs on every API request, so it avoids loading ORM objects."""
    if not secret or len(secret) > 256:
        return None
    query = (
        select(
            APIToken.id,
            APIToken.kind,
            APIToken.scopes,
            APIToken.expires_at,
            APIToken.session_id,
            APIToken.oauth_client,
            APIToken.user_id,
            APIToken.service_id,
            APIToken.last_activity,
            User.name,
            User.admin,
            Server.name,
        )
        .select_from(APIToken)
        .outerjoin(User, User.id == APIToken.user_id)
        .outerjoin(Server, Server.id == APIToken.server_id)
    )
    async with storage.session() as session:
        row = (await session.execute(query.where(APIToken.hashed == hash_secret(secret)))).one_or_none()
        if row is None:
            # not one of hubkit's own: perhaps a token imported from JupyterHub (its hash, by prefix)
            imported = await find_imported(session, secret)
            if imported is None:
                return None
            row = (await session.execute(query.where(APIToken.id == imported))).one_or_none()
            if row is None:
                return None
        tid, kind, raw_scopes, expires_at, session_id, client, user_id, service_id, used = row[:9]
        uname, uadmin, sname = row[9:]
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            await session.execute(delete(APIToken).where(APIToken.id == tid))
            await session.commit()
            return None
        if used is None or now - used > TOKEN_ACTIVITY_RESOLUTION:
            # "last used" on the token page: written at most once per resolution, not on every request
            await session.execute(update(APIToken).where(APIToken.id == tid).values(last_activity=now))
            await session.commit()
        requested = list(raw_scopes or [])
        if kind == "server" and not requested:
            requested = list(sc.ROLES["server"])
        if user_id is not None and uname is not None:
            owner = sc.owner_scopes(uname, admin=uadmin)
            if service_access.wants_service_access(requested):  # e.g. a login to a hub service
                groups = await session.execute(
                    select(Group.name).join(user_group).where(user_group.c.user_id == user_id)
                )
                grants = await service_access.granted(session, uname, groups.scalars())
                owner = service_access.with_grants(owner, grants, uname)
            granted = sc.token_scopes(requested, owner=uname, owner_all=owner, server=sname)
            return Identity(
                kind="user",
                name=uname,
                id=user_id,
                admin=uadmin,
                scopes=granted,
                token_id=tid,
                token_kind=kind,
                session_id=session_id,
                oauth_client=client,
            )
        if service_id is not None:
            svc = await session.get(Service, service_id)
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
                token_id=tid,
                token_kind=kind,
                session_id=session_id,
            )
    return None


async def from_session(storage: Storage, sess: Session) -> Identity | None:
    """The user of a login session, if the user still exists and has not ended all sessions since."""
    async with storage.session() as session:
        user = (
            await session.execute(
                select(User)
                .where(User.id == sess.user_id)
                .options(noload(User.servers), selectinload(User.groups))
            )
        ).scalar_one_or_none()
        if user is None or user.cookie_id != sess.cookie_id:
            return None
        return _user_identity(sess.session_id, user, via="cookie")
