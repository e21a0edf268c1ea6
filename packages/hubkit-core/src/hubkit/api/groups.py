"""``/groups``: list, create, read, delete, membership and properties (JupyterHub C8)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequest
from ..services import groups
from ..web.errors import JSONResponse
from .base import caller, endpoint, read_json
from .pagination import page_args, wrap


def _members(body: dict[str, Any]) -> list[str]:
    users = body.get("users", [])
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise BadRequest("users must be a list of user names")
    return users


@endpoint
async def list_groups(request: Request) -> Response:
    ctx, who = await caller(request)
    page = page_args(request)
    items, total = await groups.list_groups(ctx, who, offset=page.offset, limit=page.limit)
    return JSONResponse(wrap(request, page, items, total))


@endpoint
async def create_groups(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"groups", "users"}, default={})
    names = body.get("groups")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadRequest("groups must be a non-empty list of names")
    return JSONResponse(await groups.add_groups(ctx, who, names, _members(body)), status_code=201)


@endpoint
async def get_group(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse(await groups.group_model(ctx, who, request.path_params["group"]))


@endpoint
async def create_group(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"users"}, default={})
    created = await groups.add_groups(ctx, who, [request.path_params["group"]], _members(body))
    return JSONResponse(created[0], status_code=201)


@endpoint
async def delete_group(request: Request) -> Response:
    ctx, who = await caller(request)
    await groups.delete_group(ctx, who, request.path_params["group"])
    return Response(status_code=204)


@endpoint
async def change_members(request: Request) -> Response:
    ctx, who = await caller(request, needs=("groups",))  # credentials before the body is read
    body = await read_json(request, allowed={"users"}, default={})
    model = await groups.change_members(
        ctx, who, request.path_params["group"], _members(body), add=request.method == "POST"
    )
    return JSONResponse(model)


@endpoint
async def put_properties(request: Request) -> Response:
    ctx, who = await caller(request, needs=("groups",))  # credentials before the body is read
    body = await read_json(request, default=None)
    if body is None:
        raise BadRequest("properties must be a JSON object")
    return JSONResponse(await groups.set_properties(ctx, who, request.path_params["group"], body))


def routes(api: str) -> list[Route]:
    g = f"{api}/groups/{{group}}"
    return [
        Route(f"{api}/groups", list_groups, methods=["GET"]),
        Route(f"{api}/groups", create_groups, methods=["POST"]),
        Route(g, get_group, methods=["GET"]),
        Route(g, create_group, methods=["POST"]),
        Route(g, delete_group, methods=["DELETE"]),
        Route(f"{g}/users", change_members, methods=["POST", "DELETE"]),
        Route(f"{g}/properties", put_properties, methods=["PUT"]),
    ]
