"""Routing fallbacks and small pages: ``/user/...`` reaching the hub (server not running, JupyterHub C5),
``/hub/user-redirect/...``, ``/hub/error/<code>`` (the proxy's error target), health and the root redirect."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...services import servers
from ..caller import identify
from ..context import web_of
from ..errors import json_error
from ..render import error_page, redirect
from .common import login_redirect, page, page_routes, services

MAX_LOOP = 2


def _base(request: Request) -> str:
    return web_of(request).urls.base_url


async def root(request: Request) -> Response:
    return redirect(web_of(request).urls.hub_prefix + "home")


async def user_fallback(request: Request) -> Response:
    """``/user/...`` arrived at the hub: the proxy has no route, so let the hub explain (JupyterHub does this)."""
    rest = request.path_params["rest"]
    query = ("?" + request.url.query) if request.url.query else ""
    return redirect(f"{web_of(request).urls.hub_prefix}user/{quote(rest, safe='/')}{query}")


def _is_api(path: str, request: Request) -> bool:
    return "/api/" in f"/{path}/" or "application/json" in request.headers.get("accept", "")


@page
async def hub_user(request: Request) -> Response:
    rest = request.path_params["rest"]
    owner, _, tail = rest.partition("/")
    ident = await identify(request)
    if ident is None:
        if _is_api(tail, request):
            return json_error(403, "Missing or invalid credentials.")
        return login_redirect(request)
    ctx = services(request)
    miss = await servers.route_miss(ctx, ident, owner, tail.split("/", 1)[0])
    if not miss.visible:
        return error_page(request, 404, f"No server of {owner} that you may access.")
    server_name = miss.server_name
    suffix = quote(owner, safe="") + (f"/{quote(server_name, safe='')}" if server_name else "")
    prefix = ctx.urls.hub_prefix
    spawn_url = f"{prefix}spawn/{suffix}"
    server_url = ctx.urls.server_url(owner, server_name)
    if miss.pending:
        return redirect(f"{prefix}spawn-pending/{suffix}")
    if miss.running:
        loops = (
            int(request.query_params.get("redirects", "0") or 0)
            if request.query_params.get("redirects", "0").isdigit()
            else MAX_LOOP
        )
        if loops < MAX_LOOP:
            # on the owner's host with per-user subdomains
            target = f"{ctx.urls.user_origin(owner)}{_base(request)}user/{quote(rest, safe='/')}"
            return redirect(f"{target}?redirects={loops + 1}")
        return error_page(
            request,
            503,
            f"Your server at {server_url} is running, but requests are not reaching it "
            "(the proxy may not have its route yet). Try again in a moment.",
        )
    where = f"{_base(request)}user/{rest}"
    if _is_api(tail, request):
        return json_error(
            424, f"JupyterHub server no longer running at {where}. Restart the server at {spawn_url}"
        )
    label = (
        f"server “{server_name}”"
        if server_name
        else "your server"
        if owner == ident.name
        else f"{owner}'s server"
    )
    query = ("?" + request.url.query) if request.url.query else ""
    return error_page(
        request,
        424,
        f"The server at {server_url} is not running.",
        extra={
            "spawn_url": spawn_url,
            # once started, land where the link pointed (a course link's notebook), as JupyterHub does
            "spawn_next": f"{_base(request)}user/{quote(rest, safe='/')}{query}",
            "server_label": label,
            "original_url": where,
        },
    )


@page
async def user_redirect(request: Request) -> Response:
    ident = await identify(request)  # a redirect acts for nobody: a token may follow it too
    if ident is None or ident.kind != "user":
        return login_redirect(request)
    rest = request.path_params.get("rest", "")
    query = ("?" + request.url.query) if request.url.query else ""
    origin = web_of(request).urls.user_origin(ident.name)  # the user's own host with per-user subdomains
    return redirect(
        f"{origin}{_base(request)}user/{quote(ident.name, safe='')}/{quote(rest, safe='/')}{query}"
    )


MESSAGES = {
    404: "Nothing is served at this address.",
    503: "The server at this address is not responding. It may have stopped or be restarting.",
}


@page
async def error_target(request: Request) -> Response:
    raw = request.path_params["code"]
    code = int(raw) if raw.isdigit() and 400 <= int(raw) <= 599 else 500
    url = request.query_params.get("url", "")[:1024]
    return error_page(
        request,
        code,
        MESSAGES.get(code, "The proxy could not complete this request."),
        extra={"original_url": url},
    )


async def health(request: Request) -> Response:
    return Response(status_code=200)


ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes(p: str, base: str) -> list[Route]:
    return page_routes(
        "",
        {
            base: {"GET": root},
            p: {"GET": root},
            p.rstrip("/"): {"GET": root},
            f"{base}user/{{rest:path}}": dict.fromkeys(ANY_METHOD, user_fallback),
            f"{p}user/{{rest:path}}": dict.fromkeys(ANY_METHOD, hub_user),
            f"{p}user-redirect/{{rest:path}}": {"GET": user_redirect},
            f"{p}error/{{code}}": {"GET": error_target},
            f"{p}health": {"GET": health, "HEAD": health},
        },
    )
