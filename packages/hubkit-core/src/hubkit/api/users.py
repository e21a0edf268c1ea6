"""``/users`` and ``/users/{name}``: list (filters, sort, pagination), create, read, patch, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequest
from ..services import users
from ..web.errors import JSONResponse
from .base import bool_arg, caller, endpoint, read_json
from .pagination import page_args, wrap


@endpoint
async def list_users(request: Request) -> Response:
    ctx, who = await caller(request)
    page = page_args(request)
    query = users.UserQuery(
        offset=page.offset,
        limit=page.limit,
        count=page.envelope,
        state=request.query_params.get("state"),
        name_filter=request.query_params.get("name_filter"),
        sort=request.query_params.get("sort", "id"),
        include_stopped=bool_arg(request, "include_stopped_servers"),
    )
    items, total = await users.list_users(ctx, who, query)
    return JSONResponse(wrap(request, page, items, total))


def _admin_flag(body: dict[str, object]) -> bool:
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise BadRequest("admin must be true or false")
    return admin


@endpoint
async def create_users(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"usernames", "admin"}, default={})
    names = body.get("usernames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadRequest("usernames must be a non-empty list of strings")
    return JSONResponse(await users.add_users(ctx, who, names, admin=_admin_flag(body)), status_code=201)


@endpoint
async def get_user(request: Request) -> Response:
    ctx, who = await caller(request)
    model = await users.user_model(
        ctx, who, request.path_params["name"], include_stopped=bool_arg(request, "include_stopped_servers")
    )
    return JSONResponse(model)


@endpoint
async def create_user(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"admin"}, default={})
    model = await users.add_user(ctx, who, request.path_params["name"], admin=_admin_flag(body))
    return JSONResponse(model, status_code=201)


PATCH_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "admin": bool,
    "groups": list,
    "roles": list,
    "auth_state": (dict, type(None)),
}


@endpoint
async def patch_user(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed=set(PATCH_TYPES), default={})
    for key, value in body.items():
        if not isinstance(value, PATCH_TYPES[key]):
            raise BadRequest(f"Invalid type for {key!r}")
    if "groups" in body and not all(isinstance(g, str) for g in body["groups"]):
        raise BadRequest("groups must be a list of group names")
    changes = users.UserChanges(
        name=body.get("name"),
        admin=body.get("admin"),
        groups=body.get("groups"),
        set_auth_state="auth_state" in body,
        auth_state=body.get("auth_state"),
    )
    return JSONResponse(await users.change_user(ctx, who, request.path_params["name"], changes))


@endpoint
async def delete_user(request: Request) -> Response:
    ctx, who = await caller(request)
    await users.remove_user(ctx, who, request.path_params["name"])
    return Response(status_code=204)


def routes(api: str) -> list[Route]:
    return [
        Route(f"{api}/users", list_users, methods=["GET"]),
        Route(f"{api}/users", create_users, methods=["POST"]),
        Route(f"{api}/users/{{name}}", get_user, methods=["GET"]),
        Route(f"{api}/users/{{name}}", create_user, methods=["POST"]),
        Route(f"{api}/users/{{name}}", patch_user, methods=["PATCH"]),
        Route(f"{api}/users/{{name}}", delete_user, methods=["DELETE"]),
    ]
