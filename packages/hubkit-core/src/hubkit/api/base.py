"""Shared API plumbing: JSON errors, bounded JSON bodies, scope checks, and error mapping.

Handlers raise :class:`APIError` (or hubkit's typed errors) and the ``endpoint`` decorator turns them into
JupyterHub's error shape ``{"status": n, "message": "..."}``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response

from .. import inputs
from ..auth import scopes as sc
from ..auth.identity import Identity, resolve
from ..errors import Conflict, HubkitError, InvalidOptions, LimitReached, NotFound
from ..web import xsrf
from .requestschema import body_schema, check_query, validate

if TYPE_CHECKING:
    from ..runtime.hub import Hub

log = logging.getLogger("hubkit.api")
Handler = Callable[[Request], Awaitable[Response]]


class APIError(Exception):
    def __init__(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class JSONResponse(_StarletteJSON):
    """Every JSON answer of the hub: rendering cannot fail on stored text (see :func:`inputs.json_bytes`)."""

    def render(self, content: Any) -> bytes:
        return inputs.json_bytes(content)


class BodyTooLarge(Exception):
    """Raised by the body-limit middleware's receive wrapper; answered with 413."""


def hub_of(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def error_response(status: int, message: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


def _map(exc: Exception) -> APIError:
    from ..services.users import InvalidName

    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, NotFound):
        return APIError(404, str(exc))
    if isinstance(exc, Conflict):
        return APIError(409, str(exc))
    if isinstance(exc, InvalidName | InvalidOptions | sc.ScopeError | inputs.BadInput):
        return APIError(400, str(exc))
    if isinstance(exc, LimitReached):
        return APIError(400, str(exc))
    if isinstance(exc, xsrf.XSRFError):
        return APIError(403, exc.reason)
    if isinstance(exc, HubkitError):
        return APIError(400, str(exc))
    raise exc


def endpoint(func: Handler) -> Handler:
    @functools.wraps(func)
    async def wrapper(request: Request) -> Response:
        try:
            template = getattr(request.scope.get("route"), "path", None)
            if template is not None and request.query_params:
                from ..auth.sessions import hub_prefix

                check_query(hub_prefix(hub_of(request)) + "api", template, request.method, request.query_params)
            return await func(request)
        except (APIError, HubkitError, sc.ScopeError, xsrf.XSRFError) as exc:
            err = _map(exc)
            return error_response(err.status, err.message, err.headers)
        except ClientDisconnect:
            # the client went away while sending its body: nobody is there to read an answer or a traceback
            log.debug("%s %s: client disconnected mid-body", request.method, request.url.path)
            return error_response(400, "Client disconnected")
        except IntegrityError:
            # two requests created the same thing at once; the other one won (see storage/races.py)
            log.info("%s %s lost a create race", request.method, request.url.path)
            return error_response(409, "A concurrent request changed this resource first; it exists now")

    return wrapper


async def read_json(
    request: Request, *, allowed: Iterable[str] | None = None, default: Any = None, kind: type = dict
) -> Any:
    """Parse the body as JSON. Empty body → ``default``. Unknown top-level keys → 400 (nothing changes).

    The body must also match the operation's schema in the OpenAPI document (:mod:`.requestschema`)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    template = getattr(request.scope.get("route"), "path", None)
    schema, required = None, False
    if template is not None:
        from ..auth.sessions import hub_prefix

        schema, required = body_schema(hub_prefix(hub_of(request)) + "api", template, request.method)
    if not body.strip():
        if required:
            raise APIError(400, "This request needs a JSON body")
        return default
    if ctype and ctype not in ("application/json", "text/plain") and not ctype.endswith("+json"):
        raise APIError(400, f"Unsupported content type {ctype!r}; send application/json")
    data = inputs.loads(body)
    if not isinstance(data, kind):
        raise APIError(400, f"Request body must be a JSON {'object' if kind is dict else kind.__name__}")
    if allowed is not None and isinstance(data, dict):
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise APIError(400, f"Invalid JSON keys: {unknown[:10]}")
    if schema is not None:
        validate(schema, data)
    return data


async def identity(request: Request) -> Identity | None:
    return await resolve(hub_of(request), request)


async def authed(request: Request) -> Identity:
    """The caller, or 403. Cookie-authenticated unsafe requests must also pass the XSRF checks."""
    ident = await identity(request)
    if ident is None:
        raise APIError(403, "Missing or invalid credentials.")
    if ident.via == "cookie":
        if request.method in xsrf.UNSAFE:
            xsrf.check(hub_of(request), request, request.headers.get("x-xsrftoken"))
        else:
            site = request.headers.get("sec-fetch-site")
            if site is not None and site not in ("same-origin", "none"):
                raise APIError(403, "cross-site API request refused")
    return ident


def _need(names: tuple[str, ...]) -> APIError:
    return APIError(403, f"Action is not authorized with current scopes; requires any of {list(names)}")


def check(
    ident: Identity,
    names: tuple[str, ...],
    *,
    user: str | None = None,
    server: str | None = None,
    user_groups: Iterable[str] = (),
    group: str | None = None,
    service: str | None = None,
) -> None:
    """Caller must hold one of ``names``; if it does only with a filter that excludes the resource → 404."""
    if not sc.has_any(ident.scopes, names):
        raise _need(names)
    if user is None and group is None and service is None:
        return
    groups = tuple(user_groups)
    for n in names:
        if sc.allows(
            ident.scopes, n, user=user, server=server, user_groups=groups, group=group, service=service
        ):
            return
    raise APIError(404, "No access to resources or resources not found")


async def require(request: Request, *names: str, **resource: Any) -> Identity:
    ident = await authed(request)
    check(ident, names, **resource)
    return ident


def has(ident: Identity, name: str, **kw: Any) -> bool:
    return sc.allows(ident.scopes, name, **kw)


MAX_INT_ARG = 2**53  # beyond this a value is not a sensible offset/limit and would overflow SQL integers


def int_arg(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, f"{name} must be an integer, not {raw[:32]!r}") from None
    if abs(value) > MAX_INT_ARG:
        raise APIError(400, f"{name} is out of range")
    return value


def bool_arg(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    return raw.lower() in ("", "1", "true", "yes", "on")
