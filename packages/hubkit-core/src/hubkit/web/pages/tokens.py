"""``/hub/token``: create (with scopes and expiry) and revoke your own API tokens. The secret is shown once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...api.models import iso
from ...auth import grants
from ...auth import scopes as sc
from ...auth.sessions import hub_prefix
from ...auth.tokens import MAX_EXPIRES_IN, issue_token, parse_token_id
from ...services import users as svc
from ...storage.orm import APIToken
from ..render import redirect, render
from .common import checked_form, hub_of, page, require_login

EXPIRY_CHOICES = [
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "1 week"),
    ("2592000", "30 days"),
    ("", "never"),
]


async def _page(
    request: Request, *, secret: str | None = None, error: str = "", status: int = 200
) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    now = datetime.now(UTC)
    async with hub.db() as session:
        rows = (
            await session.execute(
                select(APIToken)
                .where(APIToken.user_id == ident.id, APIToken.kind != "server")
                .order_by(APIToken.id.desc())
            )
        ).scalars()
        tokens = [
            {
                "id": t.id,
                "note": t.note,
                "kind": t.kind,
                "scopes": " ".join(sorted(t.scopes or [])),
                "created": iso(t.created),
                "expires_at": iso(t.expires_at),
                "last_activity": iso(t.last_activity),
                "client": t.oauth_client or "API",
            }
            for t in rows
            if t.expires_at is None or t.expires_at > now
        ]
    cap = hub.settings.hub.token_expires_in_max_seconds
    choices = [(v, label) for v, label in EXPIRY_CHOICES if not cap or (v and int(v) <= cap)]
    return render(
        request,
        "token.html",
        {"tokens": tokens, "secret": secret, "error": error, "choices": choices},
        status=status,
    )


@page
async def token_page(request: Request) -> Response:
    return await _page(request)


@page
async def token_create(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    form = await checked_form(request)
    note = str(form.get("note", ""))[:1000]
    raw_scopes = str(form.get("scopes", "")).split()
    expires = str(form.get("expires_in", ""))
    try:
        scopes = grants.new_token_scopes(
            sc.validate(raw_scopes) if raw_scopes else ["inherit"],
            caller=ident.scopes,
            owner=ident.name,
            owner_all=sc.owner_scopes(ident.name, admin=ident.admin),
        )
        expires_in = int(expires) if expires else None
        if expires_in is not None and not 0 < expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expiry must be between 1 and {MAX_EXPIRES_IN} seconds")
        cap = hub.settings.hub.token_expires_in_max_seconds
        if cap and (expires_in is None or expires_in > cap):
            raise ValueError(f"tokens on this hub expire within {cap} seconds")
    except (sc.ScopeError, ValueError, grants.ScopeNotHeld, grants.ExceedsCaller) as exc:
        return await _page(request, error=str(getattr(exc, "message", None) or exc), status=400)
    async with hub.db() as session:
        secret, _ = await issue_token(
            session,
            user_id=ident.id,
            scopes=scopes,
            note=note or "Requested via token page",
            expires_in=expires_in,
        )
        await session.commit()
    return await _page(request, secret=secret, status=201)


@page
async def token_revoke(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    form = await checked_form(request)
    tid = parse_token_id(str(form.get("token_id", "")))
    if tid is not None:
        async with hub.db() as session:
            user = await svc.require_user(session, ident.name)
            await session.execute(
                delete(APIToken).where(
                    APIToken.id == tid, APIToken.user_id == user.id, APIToken.kind != "server"
                )
            )
            await session.commit()
    return redirect(f"{hub_prefix(hub)}token", status=303)


def routes(p: str) -> list[Route]:
    return [
        Route(f"{p}token", token_page, methods=["GET"]),
        Route(f"{p}token", token_create, methods=["POST"]),
        Route(f"{p}token/revoke", token_revoke, methods=["POST"]),
    ]
