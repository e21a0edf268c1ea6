"""Hub-level endpoints: version probe, info, health, the caller's identity (``/user``) and the proxy table."""

from __future__ import annotations

import platform
import sys
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from ..auth import scopes as sc
from ..storage.orm import Service, User
from .base import APIError, JSONResponse, authed, endpoint, hub_of, require
from .models import service_model, user_model
from .pagination import page_args, wrap


async def version(request: Request) -> Response:
    return JSONResponse(
        {"version": JUPYTERHUB_COMPAT_VERSION, "hubkit_version": __version__},
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def health(request: Request) -> Response:
    return Response(status_code=200)


def _class_of(obj: object) -> dict[str, str]:
    cls = type(obj)
    mod = sys.modules.get(cls.__module__.split(".")[0])
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "version": str(getattr(mod, "__version__", "unknown")),
    }


@endpoint
async def info(request: Request) -> Response:
    hub = hub_of(request)
    await require(request, "read:hub")
    return JSONResponse(
        {
            "version": JUPYTERHUB_COMPAT_VERSION,
            "hubkit_version": __version__,
            "python": platform.python_version(),
            "sys_executable": sys.executable,
            "spawner": _class_of(hub.spawner),
            "authenticator": _class_of(hub.authenticator),
            "proxy": _class_of(hub.proxy),
        }
    )


@endpoint
async def whoami(request: Request) -> Response:
    """Any valid token may ask who it is; the identify scopes are added on the fly (JupyterHub B6)."""
    hub = hub_of(request)
    ident = await authed(request)
    scopes = {k: set(v) for k, v in ident.scopes.items()}
    if ident.kind == "user":
        for name, filters in sc.expand(sc.IDENTIFY, owner=ident.name).items():
            scopes.setdefault(name, set()).update(filters)
    view = replace(ident, scopes=scopes)
    model: dict[str, Any]
    async with hub.db() as session:
        if ident.kind == "user":
            user = (
                await session.execute(
                    select(User)
                    .where(User.id == ident.id)
                    .options(selectinload(User.servers), selectinload(User.groups))
                )
            ).scalar_one_or_none()
            if user is None:
                raise APIError(403, "Missing or invalid credentials.")
            model = user_model(hub, user, view)
        else:
            svc = await session.get(Service, ident.id)
            if svc is None:
                raise APIError(403, "Missing or invalid credentials.")
            model = service_model(svc)
    model["token_id"] = f"a{ident.token_id}" if ident.token_id is not None else None
    model["session_id"] = ident.session_id
    model["scopes"] = sc.flatten(scopes)
    return JSONResponse(model)


@endpoint
async def get_proxy(request: Request) -> Response:
    hub = hub_of(request)
    await require(request, "proxy")
    page = page_args(request)
    routes = await hub.proxy.get_routes()
    keys = sorted(routes)
    total = len(keys)
    chunk = keys[page.offset : page.offset + page.limit]
    items = {k: {"routespec": k, "target": routes[k].target, "data": dict(routes[k].data)} for k in chunk}
    if page.envelope:
        return JSONResponse(wrap(request, page, items, total))  # type: ignore[arg-type]
    return JSONResponse(items)


@endpoint
async def post_proxy(request: Request) -> Response:
    hub = hub_of(request)
    await require(request, "proxy")
    await hub.routes.reconcile()
    return Response(status_code=200)


def routes(api: str) -> list[Route]:
    return [
        Route(api, version, methods=["GET", "HEAD"]),
        Route(f"{api}/", version, methods=["GET", "HEAD"]),
        Route(f"{api}/info", info, methods=["GET"]),
        Route(f"{api}/health", health, methods=["GET", "HEAD"]),
        Route(f"{api}/user", whoami, methods=["GET"]),
        Route(f"{api}/proxy", get_proxy, methods=["GET"]),
        Route(f"{api}/proxy", post_proxy, methods=["POST"]),
    ]
