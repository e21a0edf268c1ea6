"""The CHP-compatible REST API (``/api/routes``) and ``/metrics`` on the API port.

Status codes, bodies and the auth rule follow configurable-http-proxy 5.3 exactly, because JupyterHub and other
CHP tooling depend on them: 201/204 with empty bodies, 403 with an empty body for any header that does not
contain ``token <secret>`` (so ``Bearer x`` and ``TOKEN x`` are refused), 404/405 with plain text.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from .apiserver import ApiRequest, ApiResponse
from .routing import RouteError, parse_iso

if TYPE_CHECKING:
    from .server import Proxy

TOKEN_RE = re.compile(r"token\s+(\S+)")  # case-sensitive and unanchored, like CHP
JSON = b"application/json"


class RouteApi:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def authorized(self, header: str | None) -> bool:
        secret = self.proxy.settings.auth_token
        if not secret:
            return True
        match = TOKEN_RE.search(header or "")
        return bool(match) and hmac.compare_digest(match.group(1).encode(), secret.encode())  # type: ignore[union-attr]

    def handle(self, req: ApiRequest) -> ApiResponse:
        path, _, query = req.url.partition("?")
        if path == "/metrics" and req.method == "GET":
            return ApiResponse(200, self.proxy.render_metrics().encode(), b"text/plain; version=0.0.4")
        if path != "/api/routes" and not path.startswith("/api/routes/"):
            return ApiResponse(404, b"Not Found")
        if not self.authorized(req.headers.get("authorization")):
            return ApiResponse(403)
        route_path = unquote(path[len("/api/routes") :])
        if req.method == "GET":
            return self.get(route_path, parse_qs(query, keep_blank_values=True))
        if req.method == "POST":
            return self.post(route_path or "/", req.body)
        if req.method == "DELETE":
            return self.delete(route_path or "/")
        return ApiResponse(405, b"Method not supported")

    def get(self, route_path: str, query: dict[str, list[str]]) -> ApiResponse:
        table = self.proxy.routes
        if route_path and route_path != "/":
            route = table.get(route_path)
            if route is None:
                return ApiResponse(404)
            return ApiResponse(200, route.json_text().encode(), JSON)
        since_values = query.get("inactive_since") or query.get("inactiveSince")
        since_raw = since_values[0] if since_values else None
        since: float | None = None
        if since_raw is not None:
            try:
                since = parse_iso(since_raw)
            except ValueError:
                return ApiResponse(400, f"Invalid datestamp '{since_raw}' must be ISO8601.".encode())
        return ApiResponse(200, table.snapshot_text(since).encode(), JSON)

    def post(self, route_path: str, body: bytes) -> ApiResponse:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return ApiResponse(400, f"Body not valid JSON: {exc}".encode())
        if not isinstance(data, dict) or not isinstance(data.get("target"), str):
            return ApiResponse(400, b"Must specify 'target' as string")
        try:
            self.proxy.routes.add(route_path, data)
        except RouteError as exc:
            return ApiResponse(400, str(exc).encode())
        return ApiResponse(201)

    def delete(self, route_path: str) -> ApiResponse:
        if not self.proxy.routes.remove(route_path):
            return ApiResponse(404)
        return ApiResponse(204)
