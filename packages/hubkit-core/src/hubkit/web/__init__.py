"""The hub's web app: pages, REST API mounting, middleware. Entry point: :func:`hubkit.web.app.create_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette


def create_app(hub: Any) -> Starlette:
    from .app import create_app as _create

    return _create(hub)
