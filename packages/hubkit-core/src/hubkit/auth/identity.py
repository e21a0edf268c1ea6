"""Who is calling: a token or a hub login session resolved to an :class:`Identity`.

The result is a plain value object (no ORM rows escape), so handlers can open their own DB sessions freely.
Reading the token header and the session cookie off a request is the web layer's job
(:mod:`hubkit.web.caller`); this module only needs the secret or the session. Resolution runs on every request,
so it is one precompiled statement (:mod:`hubkit.storage.reads`), and its result is remembered per token and per
session in an :class:`~hubkit.auth.cache.IdentityCache` that change notices keep correct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, delete, select, update

from ..storage.access import Storage
from ..storage.orm import APIToken, Server, Service, User, group_names_of, table_of
from ..storage.reads import Query, split_joined
from . import scopes as sc
from . import service_access
from .cache import ANY_SERVICE, Entry, IdentityCache, Tag
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


def _token_select() -> Any:
    t, u, s, v = table_of(APIToken), table_of(User), table_of(Server), table_of(Service)
    columns = (
        t.c.id, t.c.kind, t.c.scopes, t.c.expires_at, t.c.session_id, t.c.oauth_client, t.c.user_id,
        t.c.service_id, t.c.server_id, t.c.last_activity, u.c.name, u.c.admin, s.c.name, v.c.name, v.c.admin,
        v.c.scopes,
    )  # fmt: skip
    joined = (
        t.outerjoin(u, u.c.id == t.c.user_id)
        .outerjoin(s, s.c.id == t.c.server_id)
        .outerjoin(v, v.c.id == t.c.service_id)
    )
    return select(*columns).select_from(joined)


def _session_query() -> Query:
    u = table_of(User)
    return Query(
        select(u.c.name, u.c.admin, u.c.cookie_id, group_names_of(u.c.id).label("groups")).where(
            u.c.id == bindparam("user_id")
        )
    )


TOKEN = Query(_token_select().where(table_of(APIToken).c.hashed == bindparam("hashed")))
TOKEN_BY_ID = Query(_token_select().where(table_of(APIToken).c.id == bindparam("token_id")))
SESSION_USER = _session_query()
USER_GROUPS = Query(select(group_names_of(bindparam("user_id", type_=Integer))))


async def from_token(storage: Storage, secret: str, cache: IdentityCache | None = None) -> Identity | None:
    """The caller behind an API token: from ``cache`` while it is valid (see :mod:`hubkit.auth.cache`), else one
    indexed statement for the token with its owner and server (and the hash check of imported JupyterHub
    tokens when hubkit's own lookup misses)."""
    if not secret or len(secret) > 256:
        return None
    key = hash_secret(secret)
    now = datetime.now(UTC)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            if hit.expires_at is None or hit.expires_at > now:
                if hit.last_used is None or now - hit.last_used > TOKEN_ACTIVITY_RESOLUTION:
                    hit.last_used = now
                    await _touch(storage, hit.identity.token_id, now)
                return hit.identity  # type: ignore[no-any-return]
            cache.drop(key)  # expired: the lookup below deletes it
    epoch = cache.epoch if cache is not None else 0
    row = await storage.reads.one(TOKEN, hashed=key)
    if row is None:
        # not one of hubkit's own: perhaps a token imported from JupyterHub (its hash, by prefix)
        async with storage.session() as session:
            imported = await find_imported(session, secret)
        if imported is None:
            return None
        row = await storage.reads.one(TOKEN_BY_ID, token_id=imported)
        if row is None:
            return None
    tid, kind, raw_scopes, expires_at, session_id, client, user_id, service_id, server_id, used = row[:10]
    uname, uadmin, sname, svc_name, svc_admin, svc_scopes = row[10:]
    if expires_at is not None and expires_at <= now:
        async with storage.tx() as session:
            await session.execute(delete(APIToken).where(APIToken.id == tid))
            await session.commit()
        return None
    if used is None or now - used > TOKEN_ACTIVITY_RESOLUTION:
        used = now
        await _touch(storage, tid, now)
    requested = list(raw_scopes or [])
    if kind == "server" and not requested:
        requested = list(sc.ROLES["server"])
    tags: set[Tag] = {("token", tid)}
    ident: Identity
    if user_id is not None and uname is not None:
        owner = sc.owner_scopes(uname, admin=uadmin)
        if service_access.wants_service_access(requested):  # e.g. a login to a hub service
            # what the services' access policies grant: depends on every service and the user's groups
            group_row = await storage.reads.one(USER_GROUPS, user_id=user_id)
            async with storage.session() as session:
                grants = await service_access.granted(
                    session, uname, split_joined(group_row[0] if group_row else None)
                )
            owner = service_access.with_grants(owner, grants, uname)
            tags.add(ANY_SERVICE)
        granted = sc.token_scopes(requested, owner=uname, owner_all=owner, server=sname)
        ident = Identity(
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
        tags |= {("user", user_id), ("user", uname)}
        if server_id is not None:
            tags.add(("server", server_id))
        if client is not None:
            tags.add(("client", client))
    elif service_id is not None and svc_name is not None:
        owner = sc.owner_scopes(svc_name, admin=svc_admin, kind="service", extra=svc_scopes or [])
        granted = sc.token_scopes(requested, owner=svc_name, owner_all=owner, kind="service")
        ident = Identity(
            kind="service",
            name=svc_name,
            id=service_id,
            admin=svc_admin,
            scopes=granted,
            token_id=tid,
            token_kind=kind,
            session_id=session_id,
        )
        tags.add(("service", service_id))
    else:
        return None
    if cache is not None:
        cache.put(key, Entry(ident, frozenset(tags), expires_at=expires_at, last_used=used), epoch)
    return ident


async def _touch(storage: Storage, token_id: int | None, now: datetime) -> None:
    """ "Last used" on the token page: written at most once per resolution, not on every request."""
    if token_id is None:
        return
    async with storage.tx() as session:
        await session.execute(update(APIToken).where(APIToken.id == token_id).values(last_activity=now))
        await session.commit()


async def from_session(
    storage: Storage, sess: Session, cache: IdentityCache | None = None
) -> Identity | None:
    """The user of a login session, if the user still exists and has not ended all sessions since."""
    key = ("session", sess.user_id, sess.cookie_id, sess.session_id)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit.identity  # type: ignore[no-any-return]
    epoch = cache.epoch if cache is not None else 0
    row = await storage.reads.one(SESSION_USER, user_id=sess.user_id)
    if row is None:
        return None
    name, admin, cookie_id, groups = row
    if cookie_id != sess.cookie_id:
        return None
    ident = Identity(
        kind="user",
        name=name,
        id=sess.user_id,
        admin=admin,
        groups=split_joined(groups),
        scopes=sc.owner_scopes(name, admin=admin),
        session_id=sess.session_id,
        via="cookie",
    )
    if cache is not None:
        cache.put(key, Entry(ident, frozenset({("user", sess.user_id), ("user", name)})), epoch)
    return ident
