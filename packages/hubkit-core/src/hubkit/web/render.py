"""Render server-side pages with the context every template needs (prefix, caller, XSRF token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from .. import __version__
from ..urls import HubUrls
from . import xsrf
from .context import web_of

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
    trim_blocks=True,
    lstrip_blocks=True,
)

PAGE_CSP = (
    "frame-ancestors 'none'; default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page_headers(urls: HubUrls) -> dict[str, str]:
    """With per-user subdomains a form may end on a user's host (logging in for a server's OAuth redirects
    there), and browsers apply ``form-action`` to the redirects after a form too."""
    if not urls.subdomains:
        return PAGE_HEADERS
    return {**PAGE_HEADERS, "Content-Security-Policy": f"{PAGE_CSP} {urls.any_user_origin}"}


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    web = web_of(request)
    prefix = web.urls.hub_prefix
    ident = request.scope.get("hubkit.identity") or None
    ctx = {
        "prefix": prefix,
        "base_url": web.services.settings.hub.base_url,
        "static": prefix + "static/",
        "version": __version__,
        "current_user": ident,
        "xsrf": xsrf.token_for(web, request),
        "request": request,
    }
    ctx.update(context or {})
    # stored text that predates the input checks (a lone surrogate) must not make a page fail
    body = _env.get_template(template).render(ctx).encode("utf-8", "xmlcharrefreplace")
    resp = HTMLResponse(body, status_code=status, headers=page_headers(web.urls))
    xsrf.persist_anchor(web, request, resp)
    return resp


def redirect(url: str, status: int = 302) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers={"Cache-Control": "no-store"})


def error_page(
    request: Request, status: int, message: str, *, extra: dict[str, Any] | None = None
) -> HTMLResponse:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return render(
        request,
        "error.html",
        {"status": status, "phrase": phrase, "message": message, **(extra or {})},
        status=status,
    )
