"""``POST /users/{name}/activity``: servers report when they were last used (rules: :mod:`hubkit.services.activity`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..services import activity
from .base import caller, endpoint, read_json


@endpoint
async def post_activity(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"last_activity", "servers"}, default=None)
    await activity.record(ctx, who, request.path_params["name"], body or {})
    return Response(status_code=200)


def routes(api: str) -> list[Route]:
    return [Route(f"{api}/users/{{name}}/activity", post_activity, methods=["POST"])]
