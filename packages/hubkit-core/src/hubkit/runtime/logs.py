"""Logging for every way of running the hub (CLI, ASGI and WSGI entry points)."""

from __future__ import annotations

import logging

from ..config.models import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.hub.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per setup step: noise
    # one line per request the hub makes (route checks every few seconds, readiness polls): noise, and
    # request lines may carry query strings that should not land in logs
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
