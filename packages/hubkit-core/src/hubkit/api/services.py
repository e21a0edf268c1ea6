"""``/services``: hub services (e.g. an external culler) and their models (JupyterHub C9)."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import grants
from ..auth import scopes as sc
from ..services.users import check_name
from ..storage.orm import Service
from .base import APIError, JSONResponse, authed, check, endpoint, hub_of, read_json, require
from .models import service_model


@endpoint
async def list_services(request: Request) -> Response:
    ident = await require(request, "list:services", "read:services:name")
    async with hub_of(request).db() as session:
        rows = (await session.execute(select(Service).order_by(Service.name))).scalars()
        out = {
            s.name: service_model(s)
            for s in rows
            if sc.allows(ident.scopes, "read:services:name", service=s.name)
            or sc.allows(ident.scopes, "list:services", service=s.name)
        }
    return JSONResponse(out)


async def _service(request: Request, names: tuple[str, ...], session: object) -> Service:
    ident = await authed(request)
    check(ident, names)
    name = request.path_params["service"]
    row = (await session.execute(select(Service).where(Service.name == name))).scalar_one_or_none()  # type: ignore[attr-defined]
    if row is None:
        raise APIError(404, "No access to resources or resources not found")
    check(ident, names, service=row.name)
    return row  # type: ignore[no-any-return]


@endpoint
async def get_service(request: Request) -> Response:
    async with hub_of(request).db() as session:
        return JSONResponse(
            service_model(await _service(request, ("read:services", "read:services:name"), session))
        )


@endpoint
async def create_service(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require(request, "admin:services")
    body = await read_json(
        request, allowed={"admin", "url", "display", "info", "scopes", "oauth_client_id"}, default={}
    )
    name = check_name(request.path_params["service"], what="service name")
    scopes = body.get("scopes", [])
    if not isinstance(scopes, list):
        raise APIError(400, "scopes must be a list")
    sc.validate(scopes)
    for key, typ in (("admin", bool), ("url", str), ("display", bool), ("info", dict)):
        if key in body and not isinstance(body[key], typ):
            raise APIError(400, f"{key} has the wrong type")
    # a service holds what it is given: never more than the caller who creates it
    wanted = sc.owner_scopes(name, admin=bool(body.get("admin")), kind="service", extra=scopes)
    if not grants.covers(ident.scopes, wanted):
        raise APIError(403, "Cannot create a service with more permissions than the caller holds")
    async with hub.db() as session:
        if (await session.execute(select(Service).where(Service.name == name))).scalar_one_or_none():
            raise APIError(409, f"Service {name} already exists")
        row = Service(
            name=name,
            admin=body.get("admin", False),
            url=body.get("url", ""),
            display=body.get("display", True),
            info=body.get("info", {}),
            scopes=scopes,
            from_config=False,
        )
        session.add(row)
        await session.commit()
        return JSONResponse(service_model(row), status_code=201)


@endpoint
async def delete_service(request: Request) -> Response:
    async with hub_of(request).db() as session:
        row = await _service(request, ("admin:services",), session)
        if row.from_config:
            raise APIError(405, "Services defined in the configuration cannot be deleted through the API")
        await session.delete(row)
        await session.commit()
    return Response(status_code=200)


def routes(api: str) -> list[Route]:
    return [
        Route(f"{api}/services", list_services, methods=["GET"]),
        Route(f"{api}/services/{{service}}", get_service, methods=["GET"]),
        Route(f"{api}/services/{{service}}", create_service, methods=["POST"]),
        Route(f"{api}/services/{{service}}", delete_service, methods=["DELETE"]),
    ]
