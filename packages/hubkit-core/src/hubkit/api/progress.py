"""Spawn progress as server-sent events in JupyterHub's format, plus hubkit's ``phase``/``reason_code``/
``queue_position`` fields. A keepalive blank line goes out every 8 s so idle proxies keep the stream open.

Each event also carries an SSE ``id:`` line (after its ``data:`` line, so line readers that take the first
line still see the data): a reconnecting ``EventSource`` sends it back as ``Last-Event-ID`` and the stream
resumes after it, and a page that already shows some events skips those the replay repeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..interfaces import ProgressEvent
from ..services import servers
from ..services.views import event_json, ready_event
from ..spawn.engine import SpawnEngine
from .base import caller, endpoint

KEEPALIVE = 8.0


class HasSpawns(Protocol):
    @property
    def spawns(self) -> SpawnEngine: ...


def _sse(data: dict[str, Any], seq: int | None = None) -> bytes:
    ident = f"id: {seq}\n" if seq is not None else ""
    return f"data: {json.dumps(data)}\n{ident}\n".encode()


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id", "")
    return int(raw) if raw.isdigit() and len(raw) <= 18 else 0


async def stream(
    source: HasSpawns, spawn_id: int, url: str, *, keepalive: float = KEEPALIVE, after: int = 0
) -> AsyncIterator[bytes]:
    it = source.spawns.events(spawn_id, after=after).__aiter__()
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
                seq, ev = task.result()
            except StopAsyncIteration:
                return
            yield _sse(event_json(ev, url), seq)
            if ev.ready or ev.failed:
                return
    finally:
        if pending is not None:
            pending.cancel()
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


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
    ctx, who = await caller(request)
    ref = await servers.load(
        ctx, who, request.path_params["name"], request.path_params.get("server_name", ""), ("read:servers",)
    )
    state = await servers.progress(ctx, ref)
    if state.ready or state.spawn_id is None:
        return sse_response(_single(ready_event(state.url)))
    return sse_response(stream(ctx, state.spawn_id, state.url, after=_last_event_id(request)))


def routes(api: str) -> list[Route]:
    return [
        Route(f"{api}/users/{{name}}/server/progress", progress, methods=["GET"]),
        Route(f"{api}/users/{{name}}/servers/{{server_name}}/progress", progress, methods=["GET"]),
    ]
