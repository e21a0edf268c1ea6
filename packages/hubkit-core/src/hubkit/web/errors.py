"""The one mapping from the hub's errors to HTTP statuses, for the REST API (JSON) and the pages (HTML) alike,
and JupyterHub's JSON error shape ``{"status": n, "message": "..."}``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response

from .. import inputs
from ..auth.grants import ExceedsCaller, ScopeNotHeld
from ..auth.scopes import ScopeError
from ..errors import (
    AuthFailed,
    Broken,
    Conflict,
    Forbidden,
    HubkitError,
    LoginExpired,
    NotAllowed,
    NotFound,
    SpawnFailed,
    TooManyRequests,
    Unavailable,
)
from .xsrf import XSRFError

# most specific first; every other HubkitError is a 400
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (NotAllowed, 405),
    (LoginExpired, 401),
    (Forbidden, 403),
    (AuthFailed, 403),
    (ExceedsCaller, 403),
    (XSRFError, 403),
    (TooManyRequests, 429),
    (SpawnFailed, 500),
    (Broken, 500),
    (Unavailable, 503),
    (ScopeNotHeld, 400),
    (ScopeError, 400),
    (HubkitError, 400),
)
HANDLED = tuple(cls for cls, _status in STATUS)


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def headers_of(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, TooManyRequests) and exc.retry_after:
        return {"Retry-After": str(int(exc.retry_after) + 1)}
    return {}


class JSONResponse(_StarletteJSON):
    """Every JSON answer of the hub: rendering cannot fail on stored text (see :func:`inputs.json_bytes`)."""

    def render(self, content: Any) -> bytes:
        return inputs.json_bytes(content)


def json_error(status: int, message: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


def answering(
    catch: tuple[type[Exception], ...], answer: Callable[[Request, Exception], Response]
) -> Callable[[Handler], Handler]:
    """A handler decorator: the errors in ``catch`` become ``answer(request, exc)`` (a JSON error for the API,
    an error page for the pages), whatever handler raised them."""

    def decorate(func: Handler) -> Handler:
        @functools.wraps(func)
        async def wrapper(request: Request) -> Response:
            try:
                return await func(request)
            except catch as exc:
                return answer(request, exc)

        return wrapper

    return decorate
