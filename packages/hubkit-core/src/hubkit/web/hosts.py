"""Per-user subdomains: the hub answers only on its own host.

The proxy's default route sends every host to the hub, so ``alice.hub.example/user/alice/`` reaches the hub
while alice's server is down, and so would ``alice.hub.example/hub/login``. Hub pages and cookies must never
live on a user's host (her server's pages share that origin), so a request for a user's host is redirected to
the same place on the hub's host, ``/user/...`` to ``/hub/user/...`` as JupyterHub does. Hosts that are not
users' (the hub's bind address used by servers and the proxy) are served as usual.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..urls import HubUrls


class UserHostRedirect:
    def __init__(self, app: ASGIApp, *, urls: HubUrls) -> None:
        self.app = app
        self.urls = urls

    def _host(self, scope: Scope) -> str:
        for key, value in scope.get("headers", ()):
            if key == b"host":
                return str(value.decode("latin-1"))
        return ""

    def target(self, scope: Scope) -> str:
        """The same request on the hub's host."""
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        user_paths = f"{self.urls.base_url}user/"
        if path.startswith(user_paths):
            path = f"{self.urls.hub_prefix}user/{path[len(user_paths) :]}"
        return f"{self.urls.subdomain_host}{path}" + (f"?{query}" if query else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.urls.owner_of_host(self._host(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", self.target(scope).encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
