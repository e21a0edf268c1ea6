"""What every page handler shares: who is logged in, safe ``next`` URLs, form parsing with XSRF, and turning the
hub's errors into error pages (statuses from :mod:`hubkit.web.errors`, as for the API)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth.identity import Identity
from ...inputs import encodable
from ...services.context import ServiceContext
from .. import xsrf
from ..caller import logged_in_user
from ..context import web_of
from ..errors import HANDLED, Handler, answering, status_of
from ..middleware import BodyTooLarge
from ..render import error_page, redirect


class PageError(Exception):
    """A handler's way to answer with a ready response (a redirect to the login page, an error page)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def services(request: Request) -> ServiceContext:
    return web_of(request).services


def safe_next(request: Request, raw: str | None) -> str | None:
    """Only same-site relative paths under the deployment's base URL: never an open redirect."""
    if not raw or len(raw) > 2048:
        return None
    if raw.startswith("//") or "\\" in raw or any(ord(c) < 0x20 for c in raw):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/"):
        return None
    base = web_of(request).urls.base_url
    if not raw.startswith(base) and raw != base.rstrip("/"):
        return None
    return raw


def login_redirect(request: Request) -> Response:
    here = request.url.path + ("?" + request.url.query if request.url.query else "")
    return redirect(f"{web_of(request).urls.hub_prefix}login?next={quote(here, safe='')}")


async def require_login(request: Request) -> tuple[ServiceContext, Identity]:
    ident = await logged_in_user(request)
    if ident is None:
        raise PageError(login_redirect(request))
    return services(request), ident


async def checked_form(request: Request, *, max_fields: int = 100) -> FormData:
    """Parse a posted form and enforce the XSRF rules (403 page on failure)."""
    try:
        form = await request.form(max_files=0, max_fields=max_fields, max_part_size=64 * 1024)
    except BodyTooLarge:
        raise  # answered 413 by the app, as for the API
    except HTTPException as exc:
        if "exceeded maximum size" in str(
            exc.detail
        ):  # one field over max_part_size: too large, not malformed
            raise PageError(
                error_page(request, 413, "A form field is larger than this hub accepts.")
            ) from None
        raise PageError(error_page(request, 400, "Malformed form submission.")) from None
    except Exception:
        raise PageError(error_page(request, 400, "Malformed form submission.")) from None
    for value in form.values():
        if isinstance(value, str) and (not encodable(value) or "\x00" in value):
            raise PageError(error_page(request, 400, "The form contains text that is not valid UTF-8."))
    try:
        xsrf.check(web_of(request), request, str(form.get("_xsrf", "")) or request.headers.get("x-xsrftoken"))
    except xsrf.XSRFError as exc:
        raise PageError(error_page(request, 403, exc.reason)) from None
    return form


def _page_answer(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PageError):
        return exc.response
    return error_page(request, status_of(exc), str(exc))


# a handler marked @page answers the hub's errors with error pages (statuses as for the API)
page = answering((PageError, *HANDLED), _page_answer)


def page_routes(prefix: str, table: dict[str, dict[str, Handler]]) -> list[Route]:
    """Routes from ``{path: {method: handler}}`` (paths relative to ``prefix``)."""
    return [
        Route(f"{prefix}{path}", handler, methods=[method])
        for path, handlers in table.items()
        for method, handler in handlers.items()
    ]
