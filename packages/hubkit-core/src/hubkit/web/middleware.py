"""One pure-ASGI middleware for every request: compatibility headers, the request-body bound (413) and
API latency metrics. Pure ASGI (not BaseHTTPMiddleware) so streaming responses (SSE) are not buffered."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import JUPYTERHUB_COMPAT_VERSION, __version__
from ..inputs import BadInput, check_text, decode_url_part
from ..metrics import Metrics


class BodyTooLarge(Exception):
    """Raised by the body-limit receive wrapper once a body passes ``max_body``; the app answers 413."""


COMMON = [
    (b"x-jupyterhub-version", JUPYTERHUB_COMPAT_VERSION.encode()),
    (b"x-hubkit-version", __version__.encode()),
]
API_EXTRA = [
    (b"access-control-allow-headers", b"accept, content-type, authorization, x-xsrftoken"),
]
API_CSP = (b"content-security-policy", b"frame-ancestors 'none'; default-src 'none'")


class HubMiddleware:
    def __init__(self, app: ASGIApp, *, api_prefix: str, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.api_prefix = api_prefix
        self.max_body = max_body
        self.metrics = metrics

    async def _reply(
        self, send: Send, status: int, message: str, api: bool, scope: Scope | None = None
    ) -> None:
        """An answer given here, before routing; counted in the metrics like every other answer."""
        if scope is not None:
            self.metrics.request_duration.labels(
                method=scope["method"], route="refused", code=str(status)
            ).observe(0)
        body = json.dumps({"status": status, "message": message}).encode() if api else message.encode()
        ctype = b"application/json" if api else b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*COMMON, (b"content-type", ctype), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = path.startswith(self.api_prefix)
        start = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}
        method = scope["method"]
        if api and method == "OPTIONS":
            await self._reply_empty(send)
            return
        try:  # text entering through the URL must be UTF-8, before any handler sees it
            check_text(path, "URL path")
            decode_url_part(scope.get("raw_path") or b"", "URL path")
            decode_url_part(scope.get("query_string", b"").replace(b"+", b" "), "query string")
        except BadInput as exc:
            await self._reply(send, 400, str(exc), api, scope)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await self._reply(send, 400, "Invalid Content-Length header", api, scope)
                return
            if too_big:
                self.metrics.throttled.labels(reason="body-too-large").inc()
                await self._reply(send, 413, f"Request body larger than {self.max_body} bytes", api, scope)
                return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return msg

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                hdrs = list(message.get("headers", []))
                hdrs.extend(COMMON)
                if api:
                    hdrs.extend(API_EXTRA)
                    if not any(k == b"content-security-policy" for k, _ in hdrs):
                        hdrs.append(API_CSP)
                message = {**message, "headers": hdrs}
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if status_holder["status"] == 429:
                self.metrics.throttled.labels(reason="http-429").inc()
            self.metrics.request_duration.labels(
                method=method, route=template, code=str(status_holder["status"])
            ).observe(time.perf_counter() - start)

    async def _reply_empty(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*COMMON, *API_EXTRA, (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
