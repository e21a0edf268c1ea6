"""Spawn progress as server-sent events in JupyterHub's format, plus hubkit's ``phase``/``reason_code``/
``queue_position`` fields. A keepalive blank line goes out every 8 s so idle proxies keep the stream open."""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..interfaces import ProgressEvent
from ..storage.orm import ServerStatus
from .base import APIError, endpoint, hub_of
from .servers import _load, _names

if TYPE_CHECKING:
    from ..runtime.hub import Hub

KEEPALIVE = 8.0


def ready_event(url: str) -> dict[str, Any]:
    return {
        "progress": 100,
        "ready": True,
        "message": f"Server ready at {url}",
        "html_message": f'Server ready at <a href="{html.escape(url)}">{html.escape(url)}</a>',
        "url": url,
        "phase": "ready",
    }


def event_json(ev: ProgressEvent, url: str) -> dict[str, Any]:
    if ev.ready:
        return ready_event(url)
    out: dict[str, Any]
    if ev.failed:
        msg = ev.message if ev.message.startswith("Spawn failed") else f"Spawn failed: {ev.message}"
        out = {"progress": 100, "failed": True, "message": msg}
    else:
        out = {"progress": ev.progress if ev.progress is not None else 0, "message": ev.message}
    out["phase"] = str(ev.phase)
    if ev.reason_code:
        out["reason_code"] = ev.reason_code
    if ev.queue_position is not None:
        out["queue_position"] = ev.queue_position
    return out


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def stream(hub: Hub, spawn_id: int, url: str, *, keepalive: float = KEEPALIVE) -> AsyncIterator[bytes]:
    it = hub.spawns.events(spawn_id).__aiter__()
    pending: asyncio.Task[tuple[int, ProgressEvent]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield b"\n\n"
                continue
            task, pending = pending, None
            try:
                _, ev = task.result()
            except StopAsyncIteration:
                return
            yield _sse(event_json(ev, url))
            if ev.ready or ev.failed:
                return
    finally:
        if pending is not None:
            pending.cancel()
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                pass


async def _single(data: dict[str, Any]) -> AsyncIterator[bytes]:
    yield _sse(data)


def sse_response(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@endpoint
async def progress(request: Request) -> Response:
    hub = hub_of(request)
    _, user, server = await _load(request, ("read:servers",))
    _, server_name = _names(request)
    if server is None:
        raise APIError(404, "No such server")
    url = hub.server_url(user.name, server_name)
    spawn_id = await hub.spawns.latest_spawn_id(user.name, server_name)
    if server.status == ServerStatus.RUNNING:
        return sse_response(_single(ready_event(url)))
    if spawn_id is None:
        raise APIError(400, f"{user.name}'s server {server_name!r} is not starting")
    return sse_response(stream(hub, spawn_id, url))


def routes(api: str) -> list[Route]:
    return [
        Route(f"{api}/users/{{name}}/server/progress", progress, methods=["GET"]),
        Route(f"{api}/users/{{name}}/servers/{{server_name}}/progress", progress, methods=["GET"]),
    ]
