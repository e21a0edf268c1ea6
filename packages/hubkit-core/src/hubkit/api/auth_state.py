"""``GET /hub/api/users/{name}/auth-state``: a user's upstream auth state, refreshed first
(:func:`hubkit.services.login.fresh_auth_state`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..services import login
from ..web.errors import JSONResponse
from .base import caller, endpoint


@endpoint
async def get_auth_state(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse(await login.fresh_auth_state(ctx, who, request.path_params["name"]))


def routes(api: str) -> list[Route]:
    """``api`` is the API prefix without a trailing slash, e.g. ``/hub/api``."""
    return [Route(f"{api}/users/{{name}}/auth-state", get_auth_state, methods=["GET"])]
