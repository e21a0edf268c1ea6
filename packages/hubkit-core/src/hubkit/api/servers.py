"""User servers: start/stop/read/create/rename for the default (``/server``) and named (``/servers/{s}``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import Conflict, InvalidOptions, LimitReached, NotFound
from ..interfaces import UserInfo
from ..services import users as svc
from ..storage.orm import Server, ServerStatus, Spawn, User
from .base import APIError, JSONResponse, authed, check, endpoint, hub_of, read_json
from .models import server_model

SLOW_SPAWN_TIMEOUT = 10.0


def _names(request: Request) -> tuple[str, str]:
    user = request.path_params["name"]
    server = request.path_params.get("server_name", "")
    return user, server


async def _load(request: Request, scope_names: tuple[str, ...]) -> tuple[Any, User, Server | None]:
    """Check scopes against the user, return (identity, user, server row or None) in a fresh session."""
    hub = hub_of(request)
    ident = await authed(request)
    check(ident, scope_names)
    name, server_name = _names(request)
    if server_name:
        svc.check_name(server_name, what="server name")
        if not hub.settings.hub.allow_named_servers:
            raise APIError(400, "Named servers are not enabled on this hub")
    async with hub.db() as session:
        user = await svc.get_user(session, name)
        if user is None:
            raise APIError(404, "No access to resources or resources not found")
        check(
            ident, scope_names, user=user.name, server=server_name, user_groups=[g.name for g in user.groups]
        )
        server = next((s for s in user.servers if s.name == server_name), None)
    return ident, user, server


def _split_body(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """JupyterHub 6 form ``{"user_options": {...}, "display_name": "..."}`` or a legacy bare options dict."""
    if body and set(body) <= {"user_options", "display_name"}:
        opts = body.get("user_options")
        if opts is not None and not isinstance(opts, dict):
            raise APIError(400, "user_options must be an object or null")
        display = body.get("display_name")
        if display is not None and (not isinstance(display, str) or len(display) > 255):
            raise APIError(400, "display_name must be a string of at most 255 characters")
        return opts, display
    return (body or None), None


def _validated_options(hub: Any, user: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Spawners that offer an options form validate API options the same way as the form's, so a bad
    profile or image is a 400 now rather than a failed spawn later. Without a form, options pass through
    unchanged, as JupyterHub's REST API does."""
    info = UserInfo(name=user.name, admin=user.admin, groups=tuple(g.name for g in user.groups), id=user.id)
    if hub.spawner.options_form(info) is None:
        return options
    try:
        return dict(hub.spawner.parse_options(info, options))
    except InvalidOptions as exc:
        raise APIError(400, f"Invalid spawn options: {exc}") from None


@endpoint
async def start_server(request: Request) -> Response:
    hub = hub_of(request)
    _, user, server = await _load(request, ("start:servers", "servers"))
    _, server_name = _names(request)
    body = await read_json(request, default={})
    options, display = _split_body(body)
    if server is not None:
        if server.status in (ServerStatus.QUEUED, ServerStatus.STARTING):
            return Response(status_code=202, media_type="text/plain")
        if server.status == ServerStatus.RUNNING:
            raise APIError(400, f"{user.name}'s server {server_name!r} is already running")
        if server.status == ServerStatus.STOPPING:
            raise APIError(400, f"{user.name}'s server {server_name!r} is still stopping; try again shortly")
    if options:
        options = _validated_options(hub, user, options)
    try:
        spawn_id = await hub.spawns.request_start(user.name, server_name, options)
    except Conflict as exc:
        if await _pending(hub, user.id, server_name):
            # a concurrent identical request started it first: same answer as a start already under way
            return Response(status_code=202, media_type="text/plain")
        raise APIError(400, str(exc)) from None
    except (LimitReached, InvalidOptions) as exc:
        raise APIError(400, str(exc)) from None
    except NotFound as exc:
        raise APIError(404, str(exc)) from None
    if display is not None:
        async with hub.db() as session:
            row = (
                await session.execute(
                    select(Server).where(Server.user_id == user.id, Server.name == server_name)
                )
            ).scalar_one_or_none()
            if row is not None:
                row.display_name = display
                await session.commit()
    outcome = await hub.spawns.wait(spawn_id, SLOW_SPAWN_TIMEOUT)
    if outcome == "ready":
        return Response(status_code=201, media_type="text/plain")
    if outcome == "failed":
        async with hub.db() as session:
            spawn = await session.get(Spawn, spawn_id)
            reason = spawn.message if spawn is not None and spawn.message else "unknown reason"
        raise APIError(500, f"Spawn failed: {reason}")
    return Response(status_code=202, media_type="text/plain")


async def _pending(hub: Any, user_id: int, server_name: str) -> bool:
    async with hub.db() as session:
        status = (
            await session.execute(
                select(Server.status).where(Server.user_id == user_id, Server.name == server_name)
            )
        ).scalar_one_or_none()
    return status in (ServerStatus.QUEUED, ServerStatus.STARTING)


@endpoint
async def stop_server(request: Request) -> Response:
    hub = hub_of(request)
    _, user, server = await _load(request, ("delete:servers", "servers"))
    _, server_name = _names(request)
    body = await read_json(request, allowed={"remove"}, default={})
    remove = body.get("remove", False)
    if not isinstance(remove, bool):
        raise APIError(400, "remove must be true or false")
    if remove and not server_name:
        raise APIError(400, "Cannot remove the default server")
    if server is None:
        if server_name:
            raise APIError(404, f"{user.name} has no server named {server_name!r}")
        return Response(status_code=204)
    done = await hub.spawns.stop(user.name, server_name, remove=remove, reason="stopped through the API")
    return Response(status_code=204 if done else 202)


@endpoint
async def get_server(request: Request) -> Response:
    hub = hub_of(request)
    ident, user, server = await _load(request, ("read:servers",))
    if server is None:
        raise APIError(404, "No such server")
    from ..auth import scopes as sc

    state = sc.allows(ident.scopes, "admin:server_state", user=user.name)
    return JSONResponse(server_model(hub, user.name, server, with_state=state))


async def _limit_check(hub: Any, user: User) -> None:
    limit = hub.settings.hub.named_server_limit_per_user
    if limit and sum(1 for s in user.servers if s.name) >= limit:
        raise APIError(400, f"{user.name} already has the maximum of {limit} named servers")


@endpoint
async def create_named(request: Request) -> Response:
    hub = hub_of(request)
    _, user, server = await _load(request, ("start:servers", "servers"))
    _, server_name = _names(request)
    if not server_name:
        raise APIError(409, "The default server always exists")
    body = await read_json(request, default={})
    options, display = _split_body(body)
    if server is not None:
        raise APIError(409, f"{user.name} already has a server named {server_name!r}")
    async with hub.db() as session:
        row_user = await svc.require_user(session, user.name)
        await _limit_check(hub, row_user)
        row = Server(
            user_id=row_user.id,
            name=server_name,
            display_name=display or "",
            status=ServerStatus.STOPPED,
            user_options=options or {},
            state={},
            activity={},
        )
        session.add(row)
        await session.commit()
        return JSONResponse(server_model(hub, user.name, row), status_code=201)


@endpoint
async def patch_server(request: Request) -> Response:
    hub = hub_of(request)
    _, user, server = await _load(request, ("start:servers", "servers"))
    body = await read_json(request, allowed={"name", "display_name", "user_options"}, default={})
    if server is None:
        raise APIError(404, "No such server")
    async with hub.db() as session:
        row = await session.get(Server, server.id)
        assert row is not None
        if "name" in body and body["name"] != row.name:
            if row.status != ServerStatus.STOPPED:
                raise APIError(400, "Stop the server before renaming it")
            if not row.name:
                raise APIError(400, "The default server cannot be renamed")
            new = svc.check_name(body["name"], what="server name")
            if any(s.name == new for s in user.servers):
                raise APIError(409, f"{user.name} already has a server named {new!r}")
            row.name = new
        if "display_name" in body:
            if not isinstance(body["display_name"], str) or len(body["display_name"]) > 255:
                raise APIError(400, "display_name must be a string of at most 255 characters")
            row.display_name = body["display_name"]
        if "user_options" in body:
            if row.status != ServerStatus.STOPPED:
                raise APIError(400, "Stop the server before changing its options")
            if not isinstance(body["user_options"], dict):
                raise APIError(400, "user_options must be an object")
            row.user_options = body["user_options"]
        await session.commit()
        return JSONResponse(server_model(hub, user.name, row))


def routes(api: str) -> list[Route]:
    d = f"{api}/users/{{name}}/server"
    n = f"{api}/users/{{name}}/servers/{{server_name}}"
    return [
        Route(d, start_server, methods=["POST"]),
        Route(d, stop_server, methods=["DELETE"]),
        Route(d, get_server, methods=["GET"]),
        Route(n, start_server, methods=["POST"]),
        Route(n, stop_server, methods=["DELETE"]),
        Route(n, get_server, methods=["GET"]),
        Route(n, create_named, methods=["PUT"]),
        Route(n, patch_server, methods=["PATCH"]),
    ]
