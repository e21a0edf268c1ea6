"""Routing fallbacks and small pages: ``/user/...`` reaching the hub (server not running, JupyterHub C5),
``/hub/user-redirect/...``, ``/hub/error/<code>`` (the proxy's error target), health and the root redirect."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...api.base import JSONResponse
from ...auth import scopes as sc
from ...auth.identity import resolve
from ...auth.sessions import hub_prefix
from ...services import users as svc
from ...storage.orm import ServerStatus
from ..render import error_page, redirect
from .common import hub_of, login_redirect, page

MAX_LOOP = 2


def _base(request: Request) -> str:
    base = hub_of(request).settings.hub.base_url
    return base if base.endswith("/") else base + "/"


async def root(request: Request) -> Response:
    return redirect(hub_prefix(hub_of(request)) + "home")


async def user_fallback(request: Request) -> Response:
    """``/user/...`` arrived at the hub: the proxy has no route, so let the hub explain (JupyterHub does this)."""
    rest = request.path_params["rest"]
    query = ("?" + request.url.query) if request.url.query else ""
    return redirect(f"{hub_prefix(hub_of(request))}user/{quote(rest, safe='/')}{query}")


def _is_api(path: str, request: Request) -> bool:
    return "/api/" in f"/{path}/" or "application/json" in request.headers.get("accept", "")


@page
async def hub_user(request: Request) -> Response:
    hub = hub_of(request)
    rest = request.path_params["rest"]
    owner, _, tail = rest.partition("/")
    ident = await resolve(hub, request)
    if ident is None:
        if _is_api(tail, request):
            return JSONResponse(
                {"status": 403, "message": "Missing or invalid credentials."}, status_code=403
            )
        return login_redirect(request)
    try:
        svc.check_name(owner)
    except svc.InvalidName as exc:
        return error_page(request, 400, str(exc))
    async with hub.db() as session:
        user = await svc.get_user(session, owner)
        servers = {s.name: s for s in user.servers} if user is not None else {}
        groups = [g.name for g in user.groups] if user is not None else []
    first = tail.split("/", 1)[0]
    server_name = first if first and first in servers and first != "" else ""
    may = user is not None and (
        sc.allows(ident.scopes, "servers", user=owner, server=server_name, user_groups=groups)
        or sc.allows(ident.scopes, "access:servers", user=owner, server=server_name, user_groups=groups)
    )
    if not may:
        return error_page(request, 404, f"No server of {owner} that you may access.")
    server = servers.get(server_name)
    suffix = quote(owner, safe="") + (f"/{quote(server_name, safe='')}" if server_name else "")
    spawn_url = f"{hub_prefix(hub)}spawn/{suffix}"
    server_url = hub.server_url(owner, server_name)
    if server is not None and server.status in (ServerStatus.QUEUED, ServerStatus.STARTING):
        return redirect(f"{hub_prefix(hub)}spawn-pending/{suffix}")
    if server is not None and server.status == ServerStatus.RUNNING:
        loops = (
            int(request.query_params.get("redirects", "0") or 0)
            if request.query_params.get("redirects", "0").isdigit()
            else MAX_LOOP
        )
        if loops < MAX_LOOP:
            target = f"{_base(request)}user/{quote(rest, safe='/')}?redirects={loops + 1}"
            return redirect(target)
        return error_page(
            request,
            503,
            f"Your server at {server_url} is running, but requests are not reaching it "
            "(the proxy may not have its route yet). Try again in a moment.",
        )
    where = f"{_base(request)}user/{rest}"
    if _is_api(tail, request):
        return JSONResponse(
            {
                "status": 424,
                "message": f"JupyterHub server no longer running at {where}. Restart the server at {spawn_url}",
            },
            status_code=424,
        )
    label = (
        f"server “{server_name}”"
        if server_name
        else "your server"
        if owner == ident.name
        else f"{owner}'s server"
    )
    return error_page(
        request,
        424,
        f"The server at {server_url} is not running.",
        extra={"spawn_url": spawn_url, "server_label": label, "original_url": where},
    )


@page
async def user_redirect(request: Request) -> Response:
    hub = hub_of(request)
    ident = await resolve(hub, request)
    if ident is None or ident.kind != "user":
        return login_redirect(request)
    rest = request.path_params.get("rest", "")
    query = ("?" + request.url.query) if request.url.query else ""
    return redirect(f"{_base(request)}user/{quote(ident.name, safe='')}/{quote(rest, safe='/')}{query}")


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


def routes(p: str, base: str) -> list[Route]:
    return [
        Route(base, root, methods=["GET"]),
        Route(p, root, methods=["GET"]),
        Route(p.rstrip("/"), root, methods=["GET"]),
        Route(f"{base}user/{{rest:path}}", user_fallback, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route(f"{p}user/{{rest:path}}", hub_user, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route(f"{p}user-redirect/{{rest:path}}", user_redirect, methods=["GET"]),
        Route(f"{p}error/{{code}}", error_target, methods=["GET"]),
        Route(f"{p}health", health, methods=["GET", "HEAD"]),
    ]
