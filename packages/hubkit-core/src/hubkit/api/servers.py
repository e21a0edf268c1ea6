"""User servers: start/stop/read/create/rename for the default (``/server``) and named (``/servers/{s}``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth.identity import Identity
from ..errors import BadRequest
from ..services import servers
from ..services.context import ServiceContext
from ..web.errors import JSONResponse
from .base import caller, endpoint, read_json


async def _server(
    request: Request, scopes: tuple[str, ...]
) -> tuple[ServiceContext, Identity, servers.ServerRef]:
    ctx, who = await caller(request)
    ref = await servers.load(
        ctx, who, request.path_params["name"], request.path_params.get("server_name", ""), scopes
    )
    return ctx, who, ref


def _display_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise BadRequest("display_name must be a string of at most 255 characters")
    return value  # type: ignore[no-any-return]


def _split_body(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """JupyterHub 6 form ``{"user_options": {...}, "display_name": "..."}`` or a legacy bare options dict."""
    if body and set(body) <= {"user_options", "display_name"}:
        opts = body.get("user_options")
        if opts is not None and not isinstance(opts, dict):
            raise BadRequest("user_options must be an object or null")
        return opts, _display_name(body.get("display_name"))
    return (body or None), None


@endpoint
async def start_server(request: Request) -> Response:
    ctx, _, ref = await _server(request, ("start:servers", "servers"))
    options, display = _split_body(await read_json(request, default={}))
    ready = await servers.start(ctx, ref, options, display_name=display)
    return Response(status_code=201 if ready else 202, media_type="text/plain")


@endpoint
async def stop_server(request: Request) -> Response:
    ctx, _, ref = await _server(request, ("delete:servers", "servers"))
    body = await read_json(request, allowed={"remove"}, default={})
    remove = body.get("remove", False)
    if not isinstance(remove, bool):
        raise BadRequest("remove must be true or false")
    done = await servers.stop(ctx, ref, remove=remove, reason="stopped through the API")
    return Response(status_code=204 if done else 202)


@endpoint
async def get_server(request: Request) -> Response:
    ctx, who, ref = await _server(request, ("read:servers",))
    return JSONResponse(servers.server_model(ctx, who, ref))


@endpoint
async def create_named(request: Request) -> Response:
    ctx, _, ref = await _server(request, ("start:servers", "servers"))
    options, display = _split_body(await read_json(request, default={}))
    return JSONResponse(
        await servers.create_named(ctx, ref, options=options, display_name=display), status_code=201
    )


@endpoint
async def patch_server(request: Request) -> Response:
    ctx, _, ref = await _server(request, ("start:servers", "servers"))
    body = await read_json(request, allowed={"name", "display_name", "user_options"}, default={})
    if "user_options" in body and not isinstance(body["user_options"], dict):
        raise BadRequest("user_options must be an object")
    if "display_name" in body and not isinstance(body["display_name"], str):
        raise BadRequest("display_name must be a string of at most 255 characters")
    changes = servers.ServerChanges(
        name=body.get("name"),
        display_name=_display_name(body.get("display_name")),
        user_options=body.get("user_options"),
    )
    return JSONResponse(await servers.change(ctx, ref, changes))


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
