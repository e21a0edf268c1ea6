"""What every REST handler shares: the caller, the JSON body, query arguments, and JupyterHub's error shape.

Handlers parse, call one service, and render. Services raise the hub's own errors; the :func:`endpoint`
decorator turns them into ``{"status": n, "message": "..."}`` with the status from :mod:`hubkit.web.errors`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .. import inputs
from ..auth.identity import Identity
from ..errors import BadRequest
from ..services import access
from ..services.context import ServiceContext
from ..web.caller import authenticated
from ..web.context import web_of
from ..web.errors import HANDLED, Handler, answering, headers_of, json_error, status_of
from .requestschema import body_schema, check_query, validate

log = logging.getLogger("hubkit.api")
MAX_INT_ARG = 2**53  # beyond this a value is not a sensible offset/limit and would overflow SQL integers


def _json_answer(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):
        # the client went away while sending its body: nobody is there to read an answer or a traceback
        log.debug("%s %s: client disconnected mid-body", request.method, request.url.path)
        return json_error(400, "Client disconnected")
    if isinstance(exc, IntegrityError):
        # two requests created the same thing at once; the other one won (see storage/races.py)
        log.info("%s %s lost a create race", request.method, request.url.path)
        return json_error(409, "A concurrent request changed this resource first; it exists now")
    return json_error(status_of(exc), str(exc), headers_of(exc))


def _query_checked(func: Handler) -> Handler:
    """Query parameters must match the operation's documented ones (:mod:`.requestschema`)."""

    async def check(request: Request) -> Response:
        template = getattr(request.scope.get("route"), "path", None)
        if template is not None and request.query_params:
            check_query(web_of(request).urls.api_prefix, template, request.method, request.query_params)
        return await func(request)

    return check


def endpoint(func: Handler) -> Handler:
    """A REST handler: query parameters checked against the API document, the hub's errors answered in
    JupyterHub's JSON error shape."""
    return answering((*HANDLED, IntegrityError, ClientDisconnect), _json_answer)(
        functools.wraps(func)(_query_checked(func))
    )


def services(request: Request) -> ServiceContext:
    return web_of(request).services


async def caller(request: Request, *, needs: tuple[str, ...] = ()) -> tuple[ServiceContext, Identity]:
    """The services and the authenticated caller (403 without credentials; XSRF rules for cookies).

    ``needs``: scopes the caller must hold one of (with any filter) before the handler reads the body; the
    service still checks them against the resource."""
    who = await authenticated(request, request.method)
    if needs:
        access.require(who, needs)
    return services(request), who


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
        schema, required = body_schema(web_of(request).urls.api_prefix, template, request.method)
    if not body.strip():
        if required:
            raise BadRequest("This request needs a JSON body")
        return default
    if ctype and ctype not in ("application/json", "text/plain") and not ctype.endswith("+json"):
        raise BadRequest(f"Unsupported content type {ctype!r}; send application/json")
    data = inputs.loads(body)
    if not isinstance(data, kind):
        raise BadRequest(f"Request body must be a JSON {'object' if kind is dict else kind.__name__}")
    if allowed is not None and isinstance(data, dict):
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise BadRequest(f"Invalid JSON keys: {unknown[:10]}")
    if schema is not None:
        validate(schema, data)
    return data


def int_arg(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw[:32]!r}") from None
    if abs(value) > MAX_INT_ARG:
        raise BadRequest(f"{name} is out of range")
    return value


def bool_arg(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    return raw.lower() in ("", "1", "true", "yes", "on")
