"""Hub-level endpoints: version probe, info, health, the caller's identity (``/user``), the proxy table and
shutting the hub down."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from ..services import system, users
from ..web.errors import JSONResponse
from .base import caller, endpoint, read_json
from .pagination import page_args, wrap


async def version(request: Request) -> Response:
    return JSONResponse(
        {"version": JUPYTERHUB_COMPAT_VERSION, "hubkit_version": __version__},
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def health(request: Request) -> Response:
    return Response(status_code=200)


@endpoint
async def info(request: Request) -> Response:
    ctx, who = await caller(request)
    return JSONResponse(system.hub_info(ctx, who))


@endpoint
async def whoami(request: Request) -> Response:
    """Any valid token may ask who it is (JupyterHub B6)."""
    ctx, who = await caller(request)
    return JSONResponse(await users.whoami(ctx, who))


@endpoint
async def get_proxy(request: Request) -> Response:
    ctx, who = await caller(request)
    page = page_args(request)
    routes = await system.proxy_table(ctx, who)
    keys = sorted(routes)
    chunk = keys[page.offset : page.offset + page.limit]
    items = {k: {"routespec": k, "target": routes[k].target, "data": dict(routes[k].data)} for k in chunk}
    if page.envelope:
        return JSONResponse(wrap(request, page, items, len(keys)))  # type: ignore[arg-type]
    return JSONResponse(items)


@endpoint
async def post_proxy(request: Request) -> Response:
    ctx, who = await caller(request)
    await system.reconcile_routes(ctx, who)
    return Response(status_code=200)


@endpoint
async def shutdown(request: Request) -> Response:
    """JupyterHub's ``POST /shutdown``: answer 202, then end the hub; ``servers``/``proxy`` (default false) say
    whether every user server and the proxy stop with it."""
    ctx, who = await caller(request)
    system.check_shutdown(who)
    body = await read_json(request, allowed=("servers", "proxy"), default={})
    servers, proxy = bool(body.get("servers", False)), bool(body.get("proxy", False))
    return JSONResponse(
        {"message": "Shutting down Hub"},
        status_code=202,
        background=BackgroundTask(system.request_shutdown, ctx, servers=servers, proxy=proxy),
    )


def routes(api: str) -> list[Route]:
    return [
        Route(api, version, methods=["GET", "HEAD"]),
        Route(f"{api}/", version, methods=["GET", "HEAD"]),
        Route(f"{api}/info", info, methods=["GET"]),
        Route(f"{api}/health", health, methods=["GET", "HEAD"]),
        Route(f"{api}/user", whoami, methods=["GET"]),
        Route(f"{api}/proxy", get_proxy, methods=["GET"]),
        Route(f"{api}/proxy", post_proxy, methods=["POST"]),
        Route(f"{api}/shutdown", shutdown, methods=["POST"]),
    ]
