"""API tokens: list, issue, read and revoke, for the REST API and the token page, under one set of rules.

A new token's scopes are capped by the caller's (:mod:`hubkit.auth.grants`), its lifetime by ``[hub]
token_expires_in_max_seconds``; secrets are shown once and stored hashed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import grants
from ..auth import scopes as sc
from ..auth.identity import Identity
from ..auth.tokens import MAX_EXPIRES_IN, issue_token, parse_token_id
from ..errors import BadRequest, Forbidden, NotFound
from ..storage.orm import APIToken, User
from . import views
from .context import ServiceContext
from .users import visible_user

ROLE_SCOPES: dict[str, list[str]] = {
    "user": ["self"],
    "admin": list(sc.ROLES["admin"]),
    "token": ["inherit"],
    "server": list(sc.ROLES["server"]),
}


def requested_scopes(scopes: list[str] | None, roles: list[str] | None) -> list[str]:
    """Scopes and JupyterHub role names as asked for; nothing asked: ``inherit``."""
    out: list[str] = []
    if scopes is not None:
        out += sc.validate(scopes)
    for r in roles or []:
        if r not in ROLE_SCOPES:
            raise BadRequest(f"Unknown role {r[:40]!r}; known roles: {sorted(ROLE_SCOPES)}")
        out += ROLE_SCOPES[r]
    return out or ["inherit"]


def expiry(ctx: ServiceContext, expires_in: int | None) -> int | None:
    """Seconds until a new token expires: within 100 years, and within the hub's cap (the default when unset)."""
    if expires_in is not None and (isinstance(expires_in, bool) or expires_in <= 0):
        raise BadRequest("expires_in must be a positive integer number of seconds, or null")
    if expires_in is not None and expires_in > MAX_EXPIRES_IN:
        raise BadRequest(f"expires_in must not exceed {MAX_EXPIRES_IN} seconds (100 years)")
    cap = ctx.settings.hub.token_expires_in_max_seconds
    if cap:
        if expires_in is None:
            return cap
        if expires_in > cap:
            raise BadRequest(f"expires_in must not exceed {cap} seconds on this hub")
    return expires_in


def granted(wanted: list[str], caller: Identity, *, owner: str, admin: bool) -> list[str]:
    """The scopes a new token gets: capped by the calling identity's scopes (see :mod:`hubkit.auth.grants`)."""
    try:
        return grants.new_token_scopes(
            wanted, caller=caller.scopes, owner=owner, owner_all=sc.owner_scopes(owner, admin=admin)
        )
    except grants.ScopeNotHeld as exc:
        raise BadRequest(str(exc)) from None
    except grants.ExceedsCaller as exc:
        raise Forbidden(str(exc)) from None


def token_id(raw: str) -> int:
    """A token's row id from its API id (``a12``); one that cannot be a row (even beyond the integer column) is a
    404, never a 500."""
    tid = parse_token_id(raw[1:]) if raw.startswith("a") else None
    if tid is None:
        raise NotFound(f"No such token: {raw[:24]}")
    return tid


async def _owner(session: AsyncSession, caller: Identity, name: str, scope: str) -> User:
    """The token owner named in the path, after the scope check (404 when hidden)."""
    return await visible_user(session, caller, (scope,), name)


def _live(rows: Any) -> list[APIToken]:
    now = datetime.now(UTC)
    return [t for t in rows if t.expires_at is None or t.expires_at > now]


async def list_tokens(ctx: ServiceContext, caller: Identity, owner: str) -> list[dict[str, Any]]:
    async with ctx.storage.session() as session:
        user = await _owner(session, caller, owner, "read:tokens")
        rows = (
            await session.execute(select(APIToken).where(APIToken.user_id == user.id).order_by(APIToken.id))
        ).scalars()
        return [views.token_model(t, user.name) for t in _live(rows)]


async def create_token(
    ctx: ServiceContext,
    caller: Identity,
    owner: str,
    *,
    scopes: list[str],
    note: str = "",
    expires_in: int | None = None,
) -> dict[str, Any]:
    """A new token for ``owner``; the model includes its secret (``token``), shown this once."""
    if len(note) > 1000:
        raise BadRequest("note must be a string of at most 1000 characters")
    expires = expiry(ctx, expires_in)
    async with ctx.storage.session() as session:
        user = await _owner(session, caller, owner, "tokens")
        final = granted(scopes, caller, owner=user.name, admin=user.admin)
        note = note or f"Requested via api by {caller.kind} {caller.name}"
        secret, row = await issue_token(session, user_id=user.id, scopes=final, note=note, expires_in=expires)
        await session.commit()
        model = views.token_model(row, user.name)
    model["token"] = secret
    return model


async def _token_row(
    session: AsyncSession, caller: Identity, owner: str, raw_id: str, scope: str
) -> tuple[User, APIToken]:
    tid = token_id(raw_id)
    user = await _owner(session, caller, owner, scope)
    row = await session.get(APIToken, tid)
    if row is None or row.user_id != user.id:
        raise NotFound("No such token")
    return user, row


async def token_model(ctx: ServiceContext, caller: Identity, owner: str, raw_id: str) -> dict[str, Any]:
    async with ctx.storage.session() as session:
        user, row = await _token_row(session, caller, owner, raw_id, "read:tokens")
        return views.token_model(row, user.name)


async def revoke_token(ctx: ServiceContext, caller: Identity, owner: str, raw_id: str) -> None:
    """Revoke a token; an OAuth token takes every token of the same client for that user with it."""
    async with ctx.storage.session() as session:
        user, row = await _token_row(session, caller, owner, raw_id, "tokens")
        if row.kind == "oauth" and row.oauth_client:
            await session.execute(
                delete(APIToken).where(APIToken.user_id == user.id, APIToken.oauth_client == row.oauth_client)
            )
        else:
            await session.delete(row)
        await session.commit()


# ---- the token page: the caller's own tokens -------------------------------------------------------------------


async def own_tokens(ctx: ServiceContext, caller: Identity) -> list[dict[str, Any]]:
    """The caller's live tokens (server tokens excepted), newest first, as the token page lists them."""
    async with ctx.storage.session() as session:
        rows = (
            await session.execute(
                select(APIToken)
                .where(APIToken.user_id == caller.id, APIToken.kind != "server")
                .order_by(APIToken.id.desc())
            )
        ).scalars()
        return [
            {
                "id": t.id,
                "note": t.note,
                "kind": t.kind,
                "scopes": " ".join(sorted(t.scopes or [])),
                "created": views.iso(t.created),
                "expires_at": views.iso(t.expires_at),
                "last_activity": views.iso(t.last_activity),
                "client": t.oauth_client or "API",
            }
            for t in _live(rows)
        ]


async def create_own_token(
    ctx: ServiceContext, caller: Identity, *, scopes: list[str], note: str, expires_in: int | None
) -> str:
    """A token for the logged-in user from the token page: the same rules as the API. Returns the secret."""
    expires = expiry(ctx, expires_in)
    final = granted(
        sc.validate(scopes) if scopes else ["inherit"], caller, owner=caller.name, admin=caller.admin
    )
    async with ctx.storage.session() as session:
        secret, _ = await issue_token(
            session,
            user_id=caller.id,
            scopes=final,
            note=note[:1000] or "Requested via token page",
            expires_in=expires,
        )
        await session.commit()
    return secret


async def revoke_own_token(ctx: ServiceContext, caller: Identity, raw_id: str) -> None:
    """Revoke one of the caller's own tokens by its row id as the token page sends it (nothing happens for an id
    that cannot be a row)."""
    token = parse_token_id(raw_id)
    if token is None:
        return
    async with ctx.storage.session() as session:
        await session.execute(
            delete(APIToken).where(
                APIToken.id == token, APIToken.user_id == caller.id, APIToken.kind != "server"
            )
        )
        await session.commit()


def expiry_choices(ctx: ServiceContext, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The token page's lifetimes that the hub's cap allows."""
    cap = ctx.settings.hub.token_expires_in_max_seconds
    return [(v, label) for v, label in choices if not cap or (v and int(v) <= cap)]
