"""``WebContext``: what the web layer (pages, REST API, OAuth provider endpoints) holds for one hub.

Built once by :func:`hubkit.runtime.app.create_app` and kept on the app; :func:`web_of` is the one way a handler
reaches it. The services it calls get :attr:`WebContext.services` and nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..auth.forwarded import Trust
from ..metrics import Metrics
from ..services.context import ServiceContext
from ..urls import HubUrls


@dataclass(frozen=True)
class WebContext:
    services: ServiceContext
    cookie_secret: bytes
    metrics: Metrics
    trusted_proxies: Trust

    @property
    def urls(self) -> HubUrls:
        return self.services.urls

    @property
    def cookie_max_age(self) -> int:
        return int(self.services.settings.hub.cookie_max_age_days * 86400)


def web_of(conn: HTTPConnection) -> WebContext:
    return conn.app.state.web  # type: ignore[no-any-return]
