"""JupyterHub's opt-in pagination envelope (``Accept: application/jupyterhub-pagination+json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .base import int_arg

MEDIA = "application/jupyterhub-pagination+json"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int
    envelope: bool


def wants_envelope(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == MEDIA for part in accept.split(","))


def page_args(request: Request) -> Page:
    envelope = wants_envelope(request)
    offset = max(0, int_arg(request, "offset", 0) or 0)
    limit = int_arg(request, "limit", DEFAULT_LIMIT if envelope else MAX_LIMIT)
    limit = min(MAX_LIMIT, max(1, limit if limit is not None else MAX_LIMIT))
    return Page(offset, limit, envelope)


def wrap(request: Request, page: Page, items: list[Any], total: int) -> Any:
    if not page.envelope:
        return items
    nxt = None
    if page.offset + len(items) < total:
        next_offset = page.offset + page.limit
        url = request.url.include_query_params(offset=next_offset, limit=page.limit)
        nxt = {"offset": next_offset, "limit": page.limit, "url": str(url)}
    return {
        "items": items,
        "_pagination": {"offset": page.offset, "limit": page.limit, "total": total, "next": nxt},
    }
