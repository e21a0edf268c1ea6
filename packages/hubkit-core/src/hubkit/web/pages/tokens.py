"""``/hub/token``: create (with scopes and expiry) and revoke your own API tokens. The secret is shown once."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import BadRequest, HubkitError
from ...services import tokens
from ..context import web_of
from ..errors import status_of
from ..render import redirect, render
from .common import checked_form, page, page_routes, require_login

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
    ctx, who = await require_login(request)
    return render(
        request,
        "token.html",
        {
            "tokens": await tokens.own_tokens(ctx, who),
            "secret": secret,
            "error": error,
            "choices": tokens.expiry_choices(ctx, EXPIRY_CHOICES),
        },
        status=status,
    )


@page
async def token_page(request: Request) -> Response:
    return await _page(request)


@page
async def token_create(request: Request) -> Response:
    ctx, who = await require_login(request)
    form = await checked_form(request)
    expires = str(form.get("expires_in", ""))
    try:
        if expires and not expires.lstrip("-").isdigit():
            raise BadRequest("expiry must be a whole number of seconds")
        secret = await tokens.create_own_token(
            ctx,
            who,
            scopes=str(form.get("scopes", "")).split(),
            note=str(form.get("note", "")),
            expires_in=int(expires) if expires else None,
        )
    except HubkitError as exc:
        return await _page(request, error=str(exc), status=400 if status_of(exc) < 500 else 500)
    return await _page(request, secret=secret, status=201)


@page
async def token_revoke(request: Request) -> Response:
    ctx, who = await require_login(request)
    form = await checked_form(request)
    await tokens.revoke_own_token(ctx, who, str(form.get("token_id", "")))
    return redirect(f"{web_of(request).urls.hub_prefix}token", status=303)


def routes(p: str) -> list[Route]:
    return page_routes(
        p, {"token": {"GET": token_page, "POST": token_create}, "token/revoke": {"POST": token_revoke}}
    )
