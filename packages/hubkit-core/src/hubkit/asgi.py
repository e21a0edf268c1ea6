"""Run the hub under any ASGI server (``hubkit`` itself uses uvicorn; see :mod:`hubkit.runtime.serve`).

    HUBKIT_CONFIG=/etc/hubkit/hubkit.toml hypercorn --bind 127.0.0.1:8081 'hubkit.asgi:create_app()'
    HUBKIT_CONFIG=/etc/hubkit/hubkit.toml uvicorn --factory hubkit.asgi:create_app --port 8081

The server must run the ASGI lifespan protocol: the hub is built and started at lifespan startup, in the
server's own event loop, and stopped at shutdown. Until then every request answers 503. ``POST
/hub/api/shutdown`` sends the process SIGTERM, which ASGI servers take as "stop gracefully" (lifespan shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from starlette.types import Receive, Scope, Send

from .config.loader import load_settings
from .config.models import Settings
from .runtime.app import create_app as create_web_app
from .runtime.hub import Hub
from .runtime.logs import configure_logging
from .runtime.ports import require_real_port
from .runtime.serve import exit_when_asked, terminate_self


class HubApp:
    """An ASGI app that owns its hub: built at lifespan startup, stopped at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.app is None:
            if scope["type"] == "http":
                body = b"the hub is starting"
                headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        lifespan = None
        watch: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.hub = await Hub.create(self.settings)
                    self.hub.lock_database()
                    await self.hub.start()
                    app = create_web_app(self.hub)
                    lifespan = app.router.lifespan_context(app)
                    await lifespan.__aenter__()
                    self.app = app
                    watch = asyncio.create_task(exit_when_asked(self.hub, terminate_self))
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watch is not None:
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watch
                if lifespan is not None:
                    await lifespan.__aexit__(None, None, None)
                if self.hub is not None:
                    await self.hub.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: str | None = None) -> HubApp:
    """The hub as an ASGI application; ``config`` defaults to ``$HUBKIT_CONFIG`` (none: the defaults)."""
    settings = load_settings(config or os.environ.get("HUBKIT_CONFIG") or None)
    require_real_port(settings, "an ASGI server")
    configure_logging(settings)
    return HubApp(settings)
