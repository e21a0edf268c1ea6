"""``hubkit`` (run): build the Hub, start it, then serve the web app with uvicorn.

The hub starts *before* uvicorn (start returns at once; adoption runs in the background), so the web app's
own lifespan must not start it again. Until ``hubkit.web`` provides ``create_app``, a minimal ASGI app
answers ``/hub/health`` and ``/hub/api`` so the process is observable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from .headlimit import protocol_options
from .hub import Hub

log = logging.getLogger("hubkit")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def fallback_app(hub: Hub) -> ASGIApp:
    health = f"{hub.info.base_url}hub/health"
    api = f"{hub.info.base_url}hub/api"

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        if path == health.rstrip("/"):
            status, body = 200, {"status": "ok", "adopting": not hub.adoption.done.is_set()}
        elif path == api.rstrip("/"):
            status, body = 200, {"version": JUPYTERHUB_COMPAT_VERSION, "hubkit_version": __version__}
        else:
            status, body = 404, {"status": 404, "message": "not found"}
        raw = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    return app


def build_app(hub: Hub) -> ASGIApp:
    try:
        from ..web.app import create_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        log.warning("hubkit.web is not available (%s); serving only /hub/health and /hub/api", exc)
        return fallback_app(hub)
    return create_app(hub)  # type: ignore[no-any-return]


async def run_hub(settings: Any) -> None:
    import uvicorn

    hub = await Hub.create(settings)
    await hub.start(background=False)
    try:
        host, port = hub.bind_address()
        public = settings.proxy.backend == "none"
        config = uvicorn.Config(
            build_app(hub),
            host=host,
            port=port,
            log_level=settings.hub.log_level.lower(),
            ssl_keyfile=settings.hub.ssl_key if public else None,
            ssl_certfile=settings.hub.ssl_cert if public else None,
            lifespan="on",
            access_log=False,
            # the hub decides itself which X-Forwarded-* to believe (auth/forwarded.py, [hub] trusted_proxies)
            proxy_headers=False,
            **protocol_options(settings.hub.max_header_bytes, settings.hub.request_head_timeout_seconds),
        )
        log.info("hubkit %s listening on %s:%d", __version__, host, port)
        await serve_then_adopt(hub, uvicorn.Server(config))
    finally:
        await hub.stop()


async def serve_then_adopt(hub: Hub, server: Any) -> None:
    """Listen first, then start re-adoption: a restarted hub answers before it polls a single server."""
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.005)
    hub.start_background()
    await task


def serve(settings: Any) -> int:
    asyncio.run(run_hub(settings))
    return 0
