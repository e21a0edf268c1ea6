"""``/services``: hub services (e.g. an external culler) and their models (JupyterHub C9)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..services import hub_services
from ..web.errors import JSONResponse
from .base import caller, endpoint, read_json


@endpoint
async def list_services(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse(await hub_services.list_services(ctx, who))


@endpoint
async def get_service(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse(await hub_services.service_model(ctx, who, request.path_params["service"]))


@endpoint
async def create_service(request: Request) -> Response:
    ctx, who = await caller(request)
    body = await read_json(
        request, allowed={"admin", "url", "display", "info", "scopes", "oauth_client_id"}, default={}
    )
    model = await hub_services.create_service(ctx, who, request.path_params["service"], body)
    return JSONResponse(model, status_code=201)


@endpoint
async def delete_service(request: Request) -> Response:
    ctx, who = await caller(request)
    await hub_services.delete_service(ctx, who, request.path_params["service"])
    return Response(status_code=200)


def routes(api: str) -> list[Route]:
    return [
        Route(f"{api}/services", list_services, methods=["GET"]),
        Route(f"{api}/services/{{service}}", get_service, methods=["GET"]),
        Route(f"{api}/services/{{service}}", create_service, methods=["POST"]),
        Route(f"{api}/services/{{service}}", delete_service, methods=["DELETE"]),
    ]
