"""``hubkit`` (run): build the Hub, start it, then serve the web app with uvicorn.

The hub starts *before* uvicorn (start returns at once; adoption runs in the background), so the web app's
own lifespan must not start it again. Other servers: :mod:`hubkit.asgi` (any ASGI server) and
:mod:`hubkit.wsgi` (any WSGI server).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..config.models import Settings
from .app import create_app
from .headlimit import protocol_options
from .hub import Hub
from .ports import bind_port_zero, report_port
from .workers import inherited_socket, supervisor_pid

log = logging.getLogger("hubkit")


def _keep_running_to_stop(sig: int, frame: object) -> None:
    """Installed for SIGTERM/SIGINT while uvicorn serves: uvicorn shuts down gracefully on the signal, then
    raises it again once it has finished; without this the default action would end the process right there,
    before :meth:`Hub.stop` stops the managed services and closes the database."""
    log.info("signal %d: stopping the hub", sig)


async def run_hub(settings: Settings) -> None:
    import uvicorn

    settings, sock = inherited_socket(settings)  # a worker of `hubkit --workers N` (workers.py)
    if sock is None:
        settings, sock = bind_port_zero(settings)  # port 0: bound now, so the hub's URLs carry the real port
    hub = await Hub.create(settings)
    hub.lock_database()
    await hub.start(background=False)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _keep_running_to_stop)
    try:
        host, port = hub.bind_address()
        public = settings.proxy.backend == "none"
        config = uvicorn.Config(
            create_app(hub),
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
        await serve_then_adopt(hub, uvicorn.Server(config), [sock] if sock else None)
    finally:
        await hub.stop()


async def serve_then_adopt(hub: Hub, server: Any, sockets: list[socket.socket] | None = None) -> None:
    """Listen first, then start re-adoption: a restarted hub answers before it polls a single server. A
    shutdown request (``POST /hub/api/shutdown``) ends serving as SIGTERM would; the caller then stops the hub."""
    task = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.005)
    if sockets and server.started:
        report_port(hub.settings, sockets[0])  # port 0 resolved: say which one, now that it answers
    hub.start_background()
    stop_serving: Callable[[], None] = lambda: setattr(server, "should_exit", True)  # noqa: E731
    watches = [asyncio.create_task(exit_when_asked(hub, stop_serving))]
    supervisor = supervisor_pid()
    if supervisor is not None:
        watches.append(asyncio.create_task(exit_when_orphaned(supervisor, stop_serving)))
    try:
        await task
    finally:
        for watch in watches:
            watch.cancel()


async def exit_when_asked(hub: Hub, stop_serving: Callable[[], None]) -> None:
    """Wait for a shutdown request, then end the server the hub runs in (its own way of stopping)."""
    await hub.services.lifecycle.wait()
    asked = hub.services.lifecycle
    log.info(
        "shutdown requested through the API (servers: %s, proxy: %s)",
        "stop" if asked.stop_servers else "keep",
        "stop" if asked.stop_proxy else "keep",
    )
    stop_serving()


async def exit_when_orphaned(parent: int, stop_serving: Callable[[], None], interval: float = 1.0) -> None:
    """A worker of ``hubkit --workers`` whose supervisor died stops as SIGTERM would: a new supervisor could not
    bind the port while orphaned workers hold it."""
    while os.getppid() == parent:  # noqa: ASYNC110 (polled: the kernel sends no event for it without prctl)
        await asyncio.sleep(interval)
    log.warning("the workers' supervisor (pid %d) is gone: stopping this worker", parent)
    stop_serving()


def terminate_self() -> None:
    """For ASGI/WSGI servers the hub does not own: SIGTERM is how each of them is told to stop gracefully."""
    os.kill(os.getpid(), signal.SIGTERM)


def serve(settings: Settings) -> int:
    asyncio.run(run_hub(settings))
    return 0
