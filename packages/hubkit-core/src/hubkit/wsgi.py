"""Run the hub under any WSGI server, through the ``a2wsgi`` adapter.

    HUBKIT_CONFIG=/etc/hubkit/hubkit.toml gunicorn --workers 1 --threads 64 \\
        --bind 127.0.0.1:8081 'hubkit.wsgi:create_app()'

:func:`create_app` builds and starts the hub on an asyncio event loop of its own (a daemon thread), runs the web
app's lifespan there (the idle culler), and returns a WSGI callable whose requests are handed to that loop. The
hub is stopped when the process exits. One worker process per hub: several workers would be several hubs on one
database. What degrades compared with an ASGI server is written in docs/deploy-vm.md ("WSGI servers").
``POST /hub/api/shutdown`` sends the worker process SIGTERM (a process manager such as gunicorn's arbiter may
start a new worker: stop the service through it to keep the hub down).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from a2wsgi import ASGIMiddleware

from .config.loader import load_settings
from .runtime.app import create_app as create_asgi_app
from .runtime.hub import Hub
from .runtime.logs import configure_logging
from .runtime.ports import require_real_port
from .runtime.serve import exit_when_asked, terminate_self

T = TypeVar("T")


def create_app(config: str | None = None) -> ASGIMiddleware:
    """The hub as a WSGI application; ``config`` defaults to ``$HUBKIT_CONFIG`` (none: the defaults)."""
    settings = load_settings(config or os.environ.get("HUBKIT_CONFIG") or None)
    require_real_port(settings, "a WSGI server")
    configure_logging(settings)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="hubkit-loop", daemon=True).start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def start() -> tuple[Hub, Any, Any]:
        hub = await Hub.create(settings)
        hub.lock_database()
        await hub.start()
        app = create_asgi_app(hub)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        return hub, app, lifespan

    hub, app, lifespan = run(start())
    watch = asyncio.run_coroutine_threadsafe(exit_when_asked(hub, terminate_self), loop)

    async def stop() -> None:
        await lifespan.__aexit__(None, None, None)
        await hub.stop()

    def shutdown() -> None:
        watch.cancel()
        run(stop())
        loop.call_soon_threadsafe(loop.stop)

    atexit.register(shutdown)
    return ASGIMiddleware(app, loop=loop)
