"""HTTP to the provider, with every transport fault turned into a message a person can act on.

Messages name the provider's host only: URLs we call never carry tokens, but we still keep them out.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
from hubkit.errors import AuthFailed

log = logging.getLogger("hubkit.oauth")


class ProviderUnreachable(AuthFailed):
    """The provider did not answer, or answered with a server error / unreadable body."""


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


class ProviderHTTP:
    def __init__(self, *, timeout: float, ca_bundle: str | None = None) -> None:
        verify: Any = ca_bundle if ca_bundle else True
        self.client = httpx.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False,
                                        headers={"User-Agent": "hubkit-oauth"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            log.warning("login provider %s timed out", host_of(url))
            raise ProviderUnreachable(
                f"The login provider ({host_of(url)}) did not answer in time. Try again in a moment."
            ) from None
        except httpx.HTTPError as exc:
            log.warning("login provider %s unreachable: %s", host_of(url), type(exc).__name__)
            raise ProviderUnreachable(
                f"The login provider ({host_of(url)}) cannot be reached right now. Try again later, "
                "or tell the hub's administrator if it keeps happening."
            ) from None
        if response.status_code >= 500:
            log.warning("login provider %s answered HTTP %s", host_of(url), response.status_code)
            raise ProviderUnreachable(
                f"The login provider ({host_of(url)}) is having trouble (HTTP {response.status_code}). "
                "Try again later."
            )
        return response

    async def get_json(self, url: str, *, token: str | None = None,
                       headers: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document; a non-2xx answer raises :class:`ProviderUnreachable` naming the status."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.request("GET", url, headers=all_headers, params=params)
        if response.status_code >= 400:
            raise ProviderRefused(response.status_code, host_of(url))
        return parse_json(response, url)


class ProviderRefused(AuthFailed):
    """A 4xx from a provider API (a revoked token, a missing scope)."""

    def __init__(self, status: int, host: str) -> None:
        self.status = status
        super().__init__(
            f"The login provider ({host}) refused a request from the hub (HTTP {status}). "
            "Start the login again; if it keeps failing, tell the hub's administrator."
        )


def parse_json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderUnreachable(
            f"The login provider ({host_of(url)}) sent a response the hub could not read."
        ) from None
