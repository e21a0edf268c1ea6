"""The web app factory: ``create_app(hub)`` assembles the routes of the API, OAuth provider, pages and plugins.

The hub is started by whoever runs the app (the CLI starts it before uvicorn); the app's lifespan only runs
the web layer's own background work (the idle culler).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles

from ..api import activity, auth_state, groups, openapi, progress, root, servers, services, tokens, users
from ..errors import HubkitError
from ..metrics import Metrics
from ..oauth import authorize, token
from ..services import access
from ..web.caller import authenticated
from ..web.context import WebContext
from ..web.errors import json_error, status_of
from ..web.hosts import UserHostRedirect
from ..web.middleware import BodyTooLarge, HubMiddleware
from ..web.pages import admin, login, misc
from ..web.pages import servers as server_pages
from ..web.pages import tokens as token_pages
from ..web.render import error_page

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("hubkit.web")
STATIC = Path(__file__).parent.parent / "web" / "static"


def _plugin_routes(hub: Hub, prefix: str) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for r in hub.registries.web_routes.routes:
        path = r.path if r.path.startswith(prefix) else prefix + r.path.lstrip("/")
        out.append(Mount(path.rstrip("/"), app=r.app, name=r.name or None))
    return out


async def _metrics(request: Request) -> Response:
    web: WebContext = request.app.state.web
    try:
        access.require(await authenticated(request, request.method), ("read:metrics",))
    except HubkitError as exc:
        return json_error(status_of(exc), str(exc))
    body = await web.metrics.render(web.services)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def build_routes(hub: Hub) -> list[BaseRoute]:
    p = hub.urls.hub_prefix
    api = hub.urls.api_prefix
    base = hub.urls.base_url
    routes: list[BaseRoute] = []
    for mod in (
        root,
        openapi,
        auth_state,
        users,
        servers,
        progress,
        activity,
        tokens,
        groups,
        services,
        authorize,
        token,
    ):
        routes.extend(mod.routes(api))
    routes.append(Route(f"{p}metrics", _metrics, methods=["GET"]))
    routes.append(Mount(f"{p}static", app=StaticFiles(directory=str(STATIC)), name="static"))
    routes.extend(_plugin_routes(hub, p))
    for pages in (login, server_pages, admin, token_pages):
        routes.extend(pages.routes(p))
    routes.extend(misc.routes(p, base))
    return routes


def _allowed_methods(routes: list[BaseRoute], request: Request) -> list[str]:
    methods: set[str] = set()
    for r in routes:
        if isinstance(r, Route) and r.methods and r.matches(request.scope)[0] != Match.NONE:
            methods |= r.methods
    if methods and request.url.path.startswith(request.app.state.api_prefix):
        methods.add("OPTIONS")  # answered by the middleware (CORS preflight)
    return sorted(methods)


def _is_api(hub: Hub, request: Request) -> bool:
    return request.url.path.startswith(hub.urls.api_prefix)


def create_app(hub: Hub, *, run_culler: bool | None = None) -> Starlette:
    """Build the ASGI app. ``run_culler`` defaults to ``[culler] enabled``."""
    metrics = Metrics()
    enable_culler = hub.settings.culler.enabled if run_culler is None else run_culler

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        culler_task = None
        if enable_culler:
            import asyncio

            from ..culler.loop import run_forever
            from .duties import Duty, run_held

            # a singleton duty: with hub replicas on PostgreSQL one of them culls (see duties.py)
            cull = Duty("cull-idle-servers", lambda: run_forever(hub.services, metrics))
            culler_task = asyncio.create_task(run_held(hub.duties.leadership, cull), name="hubkit-culler")
        try:
            yield
        finally:
            if culler_task is not None:
                culler_task.cancel()
                with contextlib.suppress(BaseException):
                    await culler_task

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # routes are split per method, so Starlette names only the first route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request.app.routes, request))
        if _is_api(hub, request):
            detail = exc.detail if exc.status_code != 404 else "Not found"
            return json_error(exc.status_code, detail, headers)
        resp = error_page(
            request,
            exc.status_code,
            "Nothing is served at this address." if exc.status_code == 404 else str(exc.detail),
        )
        resp.headers.update(headers)
        return resp

    async def too_large(request: Request, exc: Exception) -> Response:
        message = f"Request body larger than {hub.settings.hub.max_body_bytes} bytes"
        if _is_api(hub, request):
            return json_error(413, message)
        return error_page(request, 413, message)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_api(hub, request):
            return json_error(500, "Internal server error")
        return error_page(request, 500, "Something went wrong on the hub; the error has been logged.")

    app = Starlette(
        routes=build_routes(hub),
        middleware=[
            Middleware(
                HubMiddleware,  # type: ignore[arg-type]
                api_prefix=hub.urls.api_prefix,
                max_body=hub.settings.hub.max_body_bytes,
                metrics=metrics,
            ),
            # with per-user subdomains only: hub pages never answer on a user's host
            *([Middleware(UserHostRedirect, urls=hub.urls)] if hub.urls.subdomains else []),
        ],
        exception_handlers={HTTPException: http_error, BodyTooLarge: too_large, Exception: server_error},
        lifespan=lifespan,
    )
    trusted = hub.trust
    app.state.web = WebContext(hub.services, hub.cookie_secret, metrics, trusted)
    app.state.hub = hub
    app.state.api_prefix = hub.urls.api_prefix
    app.state.metrics = metrics
    app.state.trusted_proxies = trusted
    app.state.limiter = hub.services.limiter
    return app
