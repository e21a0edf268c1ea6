"""``/users/{name}/tokens``: list, issue, read and revoke API tokens (JupyterHub C7)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequest
from ..services import tokens
from ..web.errors import JSONResponse
from .base import caller, endpoint, read_json


def _string_list(body: dict[str, Any], key: str, message: str) -> list[str] | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, list) or not all(isinstance(s, str) for s in value)):
        raise BadRequest(message)
    return value


@endpoint
async def list_tokens(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse({"api_tokens": await tokens.list_tokens(ctx, who, request.path_params["name"])})


@endpoint
async def create_token(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(request, allowed={"note", "expires_in", "scopes", "roles"}, default={})
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 1000:
        raise BadRequest("note must be a string of at most 1000 characters")
    expires_in = body.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)):
        raise BadRequest("expires_in must be a positive integer number of seconds, or null")
    wanted = tokens.requested_scopes(
        _string_list(body, "scopes", "scopes must be a list of strings"),
        _string_list(body, "roles", "roles must be a list of role names"),
    )
    model = await tokens.create_token(
        ctx, who, request.path_params["name"], scopes=wanted, note=note, expires_in=expires_in
    )
    return JSONResponse(model, status_code=201)


@endpoint
async def get_token(request: Request) -> Response:
    ctx, who = await caller(request)
    model = await tokens.token_model(ctx, who, request.path_params["name"], request.path_params["token_id"])
    return JSONResponse(model)


@endpoint
async def delete_token(request: Request) -> Response:
    ctx, who = await caller(request)
    await tokens.revoke_token(ctx, who, request.path_params["name"], request.path_params["token_id"])
    return Response(status_code=204)


def routes(api: str) -> list[Route]:
    base = f"{api}/users/{{name}}/tokens"
    return [
        Route(base, list_tokens, methods=["GET"]),
        Route(base, create_token, methods=["POST"]),
        Route(f"{base}/{{token_id}}", get_token, methods=["GET"]),
        Route(f"{base}/{{token_id}}", delete_token, methods=["DELETE"]),
    ]
