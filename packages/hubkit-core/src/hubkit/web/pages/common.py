"""Helpers shared by the page handlers: who is logged in, safe ``next`` URLs, form parsing with XSRF."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ...auth.identity import Identity, resolve
from ...auth.sessions import hub_prefix
from ...inputs import encodable
from .. import xsrf
from ..render import error_page, redirect

if TYPE_CHECKING:
    from ...runtime.hub import Hub


class PageError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def hub_of(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def safe_next(hub: Hub, raw: str | None) -> str | None:
    """Only same-site relative paths under the deployment's base URL: never an open redirect."""
    if not raw or len(raw) > 2048:
        return None
    if raw.startswith("//") or "\\" in raw or any(ord(c) < 0x20 for c in raw):
        return None
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/"):
        return None
    base = hub.settings.hub.base_url or "/"
    if not raw.startswith(base if base.endswith("/") else base + "/") and raw != base.rstrip("/"):
        return None
    return raw


def login_redirect(request: Request) -> Response:
    hub = hub_of(request)
    here = request.url.path + ("?" + request.url.query if request.url.query else "")
    return redirect(f"{hub_prefix(hub)}login?next={quote(here, safe='')}")


async def current_user(request: Request) -> Identity | None:
    """The logged-in person. Pages are for browsers: only the hub's session cookie logs in here. A request with
    an API token (``Authorization``) is anonymous to pages, so a narrow token can never act through a page with
    its owner's full rights (the API checks a token's scopes; pages act as the person)."""
    ident = await resolve(hub_of(request), request)
    if ident is None or ident.kind != "user" or ident.via != "cookie":
        return None
    return ident


async def require_login(request: Request) -> Identity:
    ident = await current_user(request)
    if ident is None:
        raise PageError(login_redirect(request))
    return ident


async def checked_form(request: Request, *, max_fields: int = 100) -> FormData:
    """Parse a posted form and enforce the XSRF rules (403 page on failure)."""
    from ...api.base import BodyTooLarge

    try:
        form = await request.form(max_files=0, max_fields=max_fields, max_part_size=64 * 1024)
    except BodyTooLarge:
        raise  # answered 413 by the app, as for the API
    except HTTPException as exc:
        if "exceeded maximum size" in str(exc.detail):  # one field over max_part_size: too large, not malformed
            raise PageError(error_page(request, 413, "A form field is larger than this hub accepts.")) from None
        raise PageError(error_page(request, 400, "Malformed form submission.")) from None
    except Exception:
        raise PageError(error_page(request, 400, "Malformed form submission.")) from None
    for value in form.values():
        if isinstance(value, str) and (not encodable(value) or "\x00" in value):
            raise PageError(error_page(request, 400, "The form contains text that is not valid UTF-8."))
    try:
        xsrf.check(hub_of(request), request, str(form.get("_xsrf", "")) or request.headers.get("x-xsrftoken"))
    except xsrf.XSRFError as exc:
        raise PageError(error_page(request, 403, exc.reason)) from None
    return form


def page(func):  # type: ignore[no-untyped-def]
    """Turn :class:`PageError` and hubkit's typed errors into HTML error pages."""
    import functools

    from ...errors import Conflict, HubkitError, InvalidOptions, LimitReached, NotFound
    from ...services.users import InvalidName

    @functools.wraps(func)
    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)  # type: ignore[no-any-return]
        except PageError as exc:
            return exc.response
        except NotFound as exc:
            return error_page(request, 404, str(exc))
        except (Conflict, LimitReached, InvalidOptions, InvalidName) as exc:
            return error_page(request, 400 if not isinstance(exc, Conflict) else 409, str(exc))
        except HubkitError as exc:
            return error_page(request, 400, str(exc))

    return wrapper
