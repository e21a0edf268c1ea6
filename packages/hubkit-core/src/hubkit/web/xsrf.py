"""Cross-site request forgery defence for cookie-authenticated state changes.

Three checks, all required (see docs/security.md):

1. ``Sec-Fetch-Site``, when the browser sends it, must be ``same-origin`` or ``none``.
2. ``Origin``, when present, must name this hub's host (``null`` is refused).
3. A token must come back in the form field ``_xsrf`` or the ``X-XSRFToken`` header. It is
   ``HMAC(cookie_secret, anchor)`` where the anchor is a random value in the HttpOnly ``hubkit-xsrf`` cookie,
   so another site can neither read nor forge it. The anchor is not a credential: knowing it does not
help without the hub's secret.

Token-authenticated requests (``Authorization`` header) are not subject to this: browsers never attach that
header on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..auth import forwarded
from .context import WebContext
from .cookies import is_secure

ANCHOR_COOKIE = "hubkit-xsrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class XSRFError(Exception):
    """A cookie-authenticated state change that fails the checks above (403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _anchor(conn: HTTPConnection) -> str:
    a = conn.scope.get("hubkit.xsrf_anchor")
    if a:
        return str(a)
    a = conn.cookies.get(ANCHOR_COOKIE, "")
    if not (16 <= len(a) <= 64 and a.isalnum()):
        a = secrets.token_hex(16)
        conn.scope["hubkit.xsrf_new_anchor"] = True
    conn.scope["hubkit.xsrf_anchor"] = a
    return a


def token_for(web: WebContext, conn: HTTPConnection) -> str:
    """The token to embed in forms (also sets up the anchor cookie via :func:`persist_anchor`)."""
    return hmac.new(web.cookie_secret, b"xsrf|" + _anchor(conn).encode(), hashlib.sha256).hexdigest()


def persist_anchor(web: WebContext, conn: HTTPConnection, response: Response) -> None:
    if conn.scope.get("hubkit.xsrf_new_anchor"):
        response.set_cookie(
            ANCHOR_COOKIE,
            conn.scope["hubkit.xsrf_anchor"],
            # the whole site, not just /hub/: a page outside /hub/ (e.g. a 404 for /favicon.ico) must see
            # the anchor too, or it would mint a new one and invalidate the token in an open form
            path=base_path(web),
            httponly=True,
            samesite="strict",
            secure=is_secure(web, conn),
        )


def base_path(web: WebContext) -> str:
    return web.urls.base_url


def _allowed_hosts(web: WebContext, conn: HTTPConnection) -> set[str]:
    hosts = {conn.headers.get("host", "")}
    fwd = forwarded.of(conn).host  # only when a trusted proxy reports it
    if fwd:
        hosts.add(fwd)
    for url in (web.services.settings.hub.public_url, web.services.settings.hub.subdomain_host):
        if url:
            hosts.add(urlsplit(url).netloc)
    hosts.discard("")
    return hosts


def check(web: WebContext, conn: HTTPConnection, submitted: str | None) -> None:
    """Raise :class:`XSRFError` unless this cookie-authenticated state change is same-site and tokened."""
    site = conn.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise XSRFError(f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = conn.headers.get("origin")
    if origin is not None:
        netloc = urlsplit(origin).netloc if origin != "null" else ""
        if netloc not in _allowed_hosts(web, conn):
            raise XSRFError("cross-origin request refused (Origin does not match this hub)")
    if not conn.cookies.get(ANCHOR_COOKIE):
        raise XSRFError("missing XSRF cookie; reload the page and try again")
    expected = token_for(web, conn)
    if not submitted or not hmac.compare_digest(submitted, expected):
        raise XSRFError("missing or wrong XSRF token; reload the page and try again")
