"""``/users/{name}/tokens``: list, issue, read and revoke API tokens (JupyterHub C7)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import grants
from ..auth import scopes as sc
from ..auth.identity import Identity
from ..auth.tokens import MAX_EXPIRES_IN, issue_token, parse_token_id
from ..services import users as svc
from ..storage.orm import APIToken
from .base import APIError, JSONResponse, authed, check, endpoint, hub_of, read_json
from .models import token_model

ROLE_SCOPES: dict[str, list[str]] = {
    "user": ["self"],
    "admin": list(sc.ROLES["admin"]),
    "token": ["inherit"],
    "server": list(sc.ROLES["server"]),
}


def _token_id(raw: str) -> int:
    tid = parse_token_id(raw[1:]) if raw.startswith("a") else None
    if tid is None:
        raise APIError(404, f"No such token: {raw[:24]}")
    return tid


def requested_scopes(body: dict[str, Any]) -> list[str]:
    scopes = body.get("scopes")
    roles = body.get("roles")
    out: list[str] = []
    if scopes is not None:
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise APIError(400, "scopes must be a list of strings")
        out += sc.validate(scopes)
    if roles is not None:
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise APIError(400, "roles must be a list of role names")
        for r in roles:
            if r not in ROLE_SCOPES:
                raise APIError(400, f"Unknown role {r[:40]!r}; known roles: {sorted(ROLE_SCOPES)}")
            out += ROLE_SCOPES[r]
    return out or ["inherit"]


def grant(wanted: list[str], ident: Identity, *, owner: str, admin: bool) -> list[str]:
    """The scopes a new token gets: capped by the calling identity's scopes (see :mod:`..auth.grants`)."""
    try:
        return grants.new_token_scopes(
            wanted, caller=ident.scopes, owner=owner, owner_all=sc.owner_scopes(owner, admin=admin)
        )
    except grants.ScopeNotHeld as exc:
        raise APIError(400, str(exc)) from None
    except grants.ExceedsCaller as exc:
        raise APIError(403, str(exc)) from None


def parse_expiry(hub: Any, body: dict[str, Any]) -> int | None:
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0
    ):
        raise APIError(400, "expires_in must be a positive integer number of seconds, or null")
    if expires_in is not None and expires_in > MAX_EXPIRES_IN:
        raise APIError(400, f"expires_in must not exceed {MAX_EXPIRES_IN} seconds (100 years)")
    cap = hub.settings.hub.token_expires_in_max_seconds
    if cap:
        if expires_in is None:
            expires_in = cap
        elif expires_in > cap:
            raise APIError(400, f"expires_in must not exceed {cap} seconds on this hub")
    return expires_in


async def _owner(request: Request, session: Any, scope: str) -> tuple[Any, Any]:
    """The caller and the token owner named in the path, after the scope check (404 when hidden)."""
    ident = await authed(request)
    check(ident, (scope,))
    user = await svc.get_user(session, request.path_params["name"])
    if user is None:
        raise APIError(404, "No access to resources or resources not found")
    check(ident, (scope,), user=user.name, user_groups=[g.name for g in user.groups])
    return ident, user


async def _token_row(request: Request, session: Any, scope: str) -> tuple[Any, APIToken]:
    tid = _token_id(request.path_params["token_id"])
    _, user = await _owner(request, session, scope)
    row = await session.get(APIToken, tid)
    if row is None or row.user_id != user.id:
        raise APIError(404, "No such token")
    return user, row


@endpoint
async def list_tokens(request: Request) -> Response:
    async with hub_of(request).db() as session:
        _, user = await _owner(request, session, "read:tokens")
        rows = (
            await session.execute(select(APIToken).where(APIToken.user_id == user.id).order_by(APIToken.id))
        ).scalars()
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        live = [t for t in rows if t.expires_at is None or t.expires_at > now]
        return JSONResponse({"api_tokens": [token_model(t, user.name) for t in live]})


@endpoint
async def create_token(request: Request) -> Response:
    hub = hub_of(request)
    await authed(request)
    body = await read_json(request, allowed={"note", "expires_in", "scopes", "roles"}, default={})
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 1000:
        raise APIError(400, "note must be a string of at most 1000 characters")
    wanted = requested_scopes(body)
    expires_in = parse_expiry(hub, body)
    async with hub.db() as session:
        ident, user = await _owner(request, session, "tokens")
        scopes = grant(wanted, ident, owner=user.name, admin=user.admin)
        note = note or f"Requested via api by {ident.kind} {ident.name}"
        secret, row = await issue_token(
            session, user_id=user.id, scopes=scopes, note=note, expires_in=expires_in
        )
        await session.commit()
        model = token_model(row, user.name)
    model["token"] = secret
    return JSONResponse(model, status_code=201)


@endpoint
async def get_token(request: Request) -> Response:
    async with hub_of(request).db() as session:
        user, row = await _token_row(request, session, "read:tokens")
        return JSONResponse(token_model(row, user.name))


@endpoint
async def delete_token(request: Request) -> Response:
    async with hub_of(request).db() as session:
        user, row = await _token_row(request, session, "tokens")
        if row.kind == "oauth" and row.oauth_client:
            await session.execute(
                delete(APIToken).where(APIToken.user_id == user.id, APIToken.oauth_client == row.oauth_client)
            )
        else:
            await session.delete(row)
        await session.commit()
    return Response(status_code=204)


def routes(api: str) -> list[Route]:
    base = f"{api}/users/{{name}}/tokens"
    return [
        Route(base, list_tokens, methods=["GET"]),
        Route(base, create_token, methods=["POST"]),
        Route(f"{base}/{{token_id}}", get_token, methods=["GET"]),
        Route(f"{base}/{{token_id}}", delete_token, methods=["DELETE"]),
    ]
