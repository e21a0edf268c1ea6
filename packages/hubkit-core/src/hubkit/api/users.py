"""``/users`` and ``/users/{name}``: list (filters, sort, pagination), create, read, patch, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import scopes as sc
from ..errors import Conflict
from ..services import users as svc
from ..storage.orm import Group, Server, ServerStatus, User
from . import userrows
from .base import APIError, JSONResponse, authed, bool_arg, check, endpoint, hub_of, read_json, require
from .models import user_model
from .pagination import page_args, wrap

READ_USER = (
    "read:users",
    "read:users:name",
    "read:servers",
    "read:users:groups",
    "read:users:activity",
    "read:roles:users",
)
STATES = {"active", "ready", "inactive"}
SORTS = {"id": User.id, "name": User.name, "last_activity": User.last_activity}


def _scope_filter(filters: set[str]) -> ColumnElement[bool] | None:
    if sc.ALL in filters:
        return None
    names = {f[5:] for f in filters if f.startswith("user=")}
    names |= {f[7:].split("/", 1)[0] for f in filters if f.startswith("server=")}
    groups = {f[6:] for f in filters if f.startswith("group=")}
    conds: list[ColumnElement[bool]] = []
    if names:
        conds.append(User.name.in_(names))
    if groups:
        conds.append(User.groups.any(Group.name.in_(groups)))
    return or_(*conds) if conds else false()


def _active() -> ColumnElement[bool]:
    return User.servers.any(Server.status != ServerStatus.STOPPED)


@endpoint
async def list_users(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require(request, "list:users")
    page = page_args(request)
    conds: list[ColumnElement[bool]] = []
    scope_cond = _scope_filter(ident.scopes["list:users"])
    if scope_cond is not None:
        conds.append(scope_cond)
    state = request.query_params.get("state")
    if state is not None:
        if state not in STATES:
            raise APIError(400, f"Unrecognized state filter: {state[:32]!r}; use one of {sorted(STATES)}")
        if state == "active":
            conds.append(_active())
        elif state == "ready":
            conds.append(User.servers.any(Server.status == ServerStatus.RUNNING))
        else:
            conds.append(~_active())
    name_filter = request.query_params.get("name_filter")
    if name_filter:
        esc = name_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(func.lower(User.name).like(f"%{esc.lower()}%", escape="\\"))
    sort = request.query_params.get("sort", "id")
    desc = sort.startswith("-")
    col = SORTS.get(sort.lstrip("-"))
    if col is None:
        raise APIError(400, f"sort must be one of {sorted(SORTS)} (optionally prefixed with '-')")
    where = and_(*conds) if conds else None
    q = userrows.page_query()
    count_q = select(func.count(User.id))
    if where is not None:
        q = q.where(where)
        count_q = count_q.where(where)
    order = col.desc() if desc else col.asc()
    q = q.order_by(order, User.id.desc() if desc else User.id.asc()).offset(page.offset).limit(page.limit)
    include_stopped = bool_arg(request, "include_stopped_servers")
    async with hub.db() as session:
        users = await userrows.load(session, q)
        total = int((await session.execute(count_q)).scalar_one()) if page.envelope else len(users)
        items = [user_model(hub, u, ident, include_stopped=include_stopped) for u in users]
    return JSONResponse(wrap(request, page, items, total))


@endpoint
async def create_users(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require(request, "admin:users")
    body = await read_json(request, allowed={"usernames", "admin"}, default={})
    names = body.get("usernames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise APIError(400, "usernames must be a non-empty list of strings")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise APIError(400, "admin must be true or false")
    if admin and not ident.admin:
        raise APIError(403, "Only admins can grant admin rights")
    for n in names:
        svc.check_name(n)
    async with hub.db() as session:
        created = await svc.create_users(hub, session, names, admin=admin)
        if not created:
            raise APIError(409, "All of the requested users already exist")
        ids = [u.id for u in created]
        rows = (
            await session.execute(
                select(User).where(User.id.in_(ids)).execution_options(populate_existing=True)
            )
        ).scalars()
        return JSONResponse([user_model(hub, u, ident) for u in rows], status_code=201)


def _auth_state(hub: Any, user: User) -> Any:
    if not hub.crypt.enabled:
        return None
    try:
        return user.auth_state
    except RuntimeError:
        return None


@endpoint
async def get_user(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    ident = await require(request, *READ_USER)
    async with hub.db() as session:
        user = await userrows.load_one(session, name)
        if user is None:
            raise APIError(404, "No access to resources or resources not found")
        check(ident, READ_USER, user=user.name, user_groups=[g.name for g in user.groups])
        model = user_model(hub, user, ident, include_stopped=bool_arg(request, "include_stopped_servers"))
        if sc.allows(ident.scopes, "admin:auth_state", user=user.name):
            # auth_state is decrypted only when it may be shown; without a key it is always null, so the
            # three-statement ORM re-read is skipped
            full = await svc.get_user(session, name) if hub.crypt.enabled else None
            model["auth_state"] = _auth_state(hub, full) if full is not None else None
    return JSONResponse(model)


@endpoint
async def create_user(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    ident = await require(request, "admin:users")
    body = await read_json(request, allowed={"admin"}, default={})
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise APIError(400, "admin must be true or false")
    if admin and not ident.admin:
        raise APIError(403, "Only admins can grant admin rights")
    svc.check_name(name)
    async with hub.db() as session:
        if await svc.get_user(session, name) is not None:
            raise APIError(409, f"User {name} already exists")
        created = await svc.create_users(hub, session, [name], admin=admin)
        if not created:
            raise APIError(409, f"User {name} already exists")
        user = await svc.require_user(session, created[0].name)
        return JSONResponse(user_model(hub, user, ident), status_code=201)


PATCH_KEYS = {"name", "admin", "groups", "roles", "auth_state"}


@endpoint
async def patch_user(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    ident = await require(request, "admin:users")
    body = await read_json(request, allowed=PATCH_KEYS, default={})
    types = {"name": str, "admin": bool, "groups": list, "roles": list, "auth_state": (dict, type(None))}
    for key, value in body.items():
        if not isinstance(value, types[key]):  # type: ignore[arg-type]
            raise APIError(400, f"Invalid type for {key!r}")
    async with hub.db() as session:
        user = await svc.get_user(session, name)
        if user is None:
            raise APIError(404, "No access to resources or resources not found")
        check(ident, ("admin:users",), user=user.name, user_groups=[g.name for g in user.groups])
        if (user.admin or body.get("admin")) and not ident.admin:
            raise APIError(403, "Only admins can modify admin users or grant admin rights")
        if "name" in body:
            await svc.rename_user(session, user, await svc.normalize(hub, body["name"]))
        if "admin" in body:
            user.admin = body["admin"]
        if "groups" in body:
            wanted = body["groups"]
            if not all(isinstance(g, str) for g in wanted):
                raise APIError(400, "groups must be a list of group names")
            groups = list((await session.execute(select(Group).where(Group.name.in_(wanted)))).scalars())
            missing = set(wanted) - {g.name for g in groups}
            if missing:
                raise APIError(400, f"No such group(s): {sorted(missing)[:10]}")
            user.groups = groups
        if "auth_state" in body:
            if not hub.crypt.enabled:
                raise APIError(400, "auth_state cannot be stored: no encryption key configured")
            user.auth_state = body["auth_state"]
        await session.commit()
        user = await svc.require_user(session, user.name)
        model = user_model(hub, user, ident)
        model["auth_state"] = _auth_state(hub, user)
    return JSONResponse(model)


@endpoint
async def delete_user(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    ident = await authed(request)
    check(ident, ("delete:users",))
    async with hub.db() as session:
        user = await svc.get_user(session, name)
        if user is None:
            raise APIError(404, "No access to resources or resources not found")
        check(ident, ("delete:users",), user=user.name, user_groups=[g.name for g in user.groups])
        if ident.kind == "user" and ident.name == user.name:
            raise APIError(400, "Cannot delete yourself")
        if user.admin and not ident.admin:
            raise APIError(403, "Only admins can delete admin users")
    try:
        await svc.delete_user(hub, name)
    except Conflict as exc:
        raise APIError(400, str(exc)) from None
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
