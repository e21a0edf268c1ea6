"""Client for the CHP route API (spoken by hubkit-proxy and configurable-http-proxy alike).

Keeps JupyterHub's conventions so the same proxy table can be shared with CHP tooling: routespecs end in ``/``
(``/user/alice/``) while CHP keys do not (``/user/alice``); every route the hub owns carries ``"jupyterhub": true``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, unquote

import httpx

log = logging.getLogger("hubkit_proxy.client")


class ProxyApiError(RuntimeError):
    pass


def routespec_to_path(routespec: str, host_routing: bool = False) -> str:
    """``/user/alice/`` -> ``/user/alice``; ``alice.hub.example/user/alice/`` -> ``/alice.hub.example/user/alice``."""
    if host_routing and not routespec.startswith("/"):
        routespec = "/" + routespec
    elif not routespec.startswith("/"):
        raise ValueError(f"routespec {routespec!r} must start with '/' (or a host, with host routing)")
    if routespec != "/" and routespec.endswith("/"):
        routespec = routespec[:-1]
    return routespec


def path_to_routespec(path: str, host_routing: bool = False) -> str:
    path = quote(unquote(path), safe="@/~")
    if host_routing and path != "/":
        path = path[1:]
    if not path.endswith("/"):
        path += "/"
    return path


class ChpClient:
    """One proxy's API. Connection errors and 5xx are retried with backoff for ``retry_seconds`` in total."""

    def __init__(
        self, api_url: str, token: str, *, request_timeout: float = 10.0, retry_seconds: float = 30.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retry_seconds = retry_seconds
        self.http = httpx.AsyncClient(
            timeout=request_timeout, headers={"Authorization": f"token {token}"}, trust_env=False
        )
        self.instance: str | None = None  # X-Hubkit-Proxy-Instance seen last (hubkit-proxy only)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, *, retry: bool = True, **kw: Any) -> httpx.Response:
        url = f"{self.api_url}/api/routes{quote(path, safe='/@~:')}"
        delay = 0.1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.retry_seconds if retry else 0)
        while True:
            try:
                resp = await self.http.request(method, url, **kw)
                if resp.status_code < 500:
                    self.instance = resp.headers.get("x-hubkit-proxy-instance", self.instance)
                    return resp
                problem = f"{resp.status_code} {resp.text[:200]}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if loop.time() + delay > deadline:
                raise ProxyApiError(f"{method} {url} failed: {problem}")
            log.debug("retrying %s %s after %s", method, url, problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def ping(self) -> bool:
        try:
            return (await self.request("GET", "", retry=False)).status_code == 200
        except ProxyApiError:
            return False

    async def add(self, path: str, body: dict[str, Any]) -> None:
        resp = await self.request("POST", path, json=body)
        if resp.status_code != 201:
            raise ProxyApiError(f"adding route {path}: {resp.status_code} {resp.text[:200]}")

    async def delete(self, path: str) -> None:
        resp = await self.request("DELETE", path)
        if resp.status_code == 404:
            log.debug("route %s was already gone", path)
        elif resp.status_code != 204:
            raise ProxyApiError(f"deleting route {path}: {resp.status_code} {resp.text[:200]}")

    async def all(self) -> dict[str, dict[str, Any]]:
        resp = await self.request("GET", "")
        if resp.status_code != 200:
            raise ProxyApiError(f"listing routes: {resp.status_code} {resp.text[:200]}")
        data = resp.json()
        if not isinstance(data, dict):
            raise ProxyApiError("listing routes: the proxy did not answer with an object")
        return data
