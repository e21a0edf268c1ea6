"""``/groups``: list, create, read, delete, membership and properties (JupyterHub C8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import scopes as sc
from ..services import users as svc
from ..storage.orm import Group
from ..storage.races import retry_unique
from .base import APIError, JSONResponse, authed, check, endpoint, hub_of, read_json, require
from .models import group_model
from .pagination import page_args, wrap

READ_GROUP = ("read:groups", "read:groups:name", "read:roles:groups")


def _members(body: dict[str, Any]) -> list[str]:
    users = body.get("users", [])
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise APIError(400, "users must be a list of user names")
    return users


@endpoint
async def list_groups(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require(request, "list:groups")
    page = page_args(request)
    filters = ident.scopes["list:groups"]
    q = select(Group).options(selectinload(Group.users))
    count_q = select(func.count(Group.id))
    if sc.ALL not in filters:
        names = {f[6:] for f in filters if f.startswith("group=")}
        q = q.where(Group.name.in_(names))
        count_q = count_q.where(Group.name.in_(names))
    q = q.order_by(Group.id).offset(page.offset).limit(page.limit)
    async with hub.db() as session:
        groups = list((await session.execute(q)).scalars())
        total = int((await session.execute(count_q)).scalar_one())
        with_users = sc.has_any(ident.scopes, ("read:groups",))
        items = [group_model(g, with_users=with_users) for g in groups]
    return JSONResponse(wrap(request, page, items, total))


@endpoint
async def create_groups(request: Request) -> Response:
    hub = hub_of(request)
    await require(request, "admin:groups")
    body = await read_json(request, allowed={"groups", "users"}, default={})
    names = body.get("groups")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise APIError(400, "groups must be a non-empty list of names")
    members = _members(body)
    async with hub.db() as session:
        created = [await svc.create_group(session, n, members) for n in dict.fromkeys(names)]
        await session.commit()
        return JSONResponse([group_model(g) for g in created], status_code=201)


async def _group(request: Request, names: tuple[str, ...], session: Any) -> Group:
    ident = await authed(request)
    check(ident, names)
    name = request.path_params["group"]
    group = await svc.get_group(session, name)
    if group is None:
        raise APIError(404, "No access to resources or resources not found")
    check(ident, names, group=group.name)
    return group


@endpoint
async def get_group(request: Request) -> Response:
    async with hub_of(request).db() as session:
        group = await _group(request, READ_GROUP, session)
        return JSONResponse(group_model(group))


@endpoint
async def create_group(request: Request) -> Response:
    hub = hub_of(request)
    await require(request, "admin:groups")
    body = await read_json(request, allowed={"users"}, default={})
    async with hub.db() as session:
        group = await svc.create_group(session, request.path_params["group"], _members(body))
        await session.commit()
        return JSONResponse(group_model(group), status_code=201)


@endpoint
async def delete_group(request: Request) -> Response:
    async with hub_of(request).db() as session:
        group = await _group(request, ("delete:groups",), session)
        await session.delete(group)
        await session.commit()
    return Response(status_code=204)


@endpoint
async def change_members(request: Request) -> Response:
    await require(request, "groups")  # credentials before the body is read
    body = await read_json(request, allowed={"users"}, default={})

    async def change() -> Response:
        async with hub_of(request).db() as session:
            group = await _group(request, ("groups",), session)
            users = await svc.users_by_name(session, _members(body))
            if request.method == "POST":
                svc.add_members(group, users)
            else:
                svc.remove_members(group, users)
            await session.commit()
            return JSONResponse(group_model(group))

    return await retry_unique(change)  # adding a member twice at once is still one membership


@endpoint
async def put_properties(request: Request) -> Response:
    await require(request, "groups")  # credentials before the body is read
    body = await read_json(request, default=None)
    if body is None:
        raise APIError(400, "properties must be a JSON object")
    async with hub_of(request).db() as session:
        group = await _group(request, ("groups",), session)
        group.properties = body
        await session.commit()
        return JSONResponse(group_model(group))


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
