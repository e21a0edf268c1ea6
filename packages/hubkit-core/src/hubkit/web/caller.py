"""Who sent this request: its token header, else its hub session cookie (:mod:`hubkit.auth.identity` does the
lookup). Resolved once per request and kept on its scope. Cookie-authenticated state changes must also pass the
XSRF checks (:mod:`.xsrf`); token-authenticated ones never are: browsers never attach that header themselves."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ..auth.identity import Identity, from_session, from_token, header_token
from ..errors import Forbidden, NotAuthenticated
from . import xsrf
from .context import web_of
from .cookies import read_session


async def identify(conn: HTTPConnection) -> Identity | None:
    """Token header first (an invalid header means anonymous, never a cookie fallback), then the cookie."""
    cached = conn.scope.get("hubkit.identity", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    services = web_of(conn).services
    secret = header_token(conn.headers.get("authorization"))
    ident: Identity | None
    if secret is not None:
        ident = await from_token(services.storage, secret, services.identities) if secret else None
    else:
        sess = read_session(conn)
        ident = await from_session(services.storage, sess, services.identities) if sess is not None else None
    conn.scope["hubkit.identity"] = ident
    return ident


async def authenticated(conn: HTTPConnection, method: str) -> Identity:
    """The caller of an API request, or 403. Cookie-authenticated unsafe requests must pass the XSRF checks,
    and safe ones must come from this site (``Sec-Fetch-Site``)."""
    ident = await identify(conn)
    if ident is None:
        raise NotAuthenticated()
    if ident.via == "cookie":
        if method in xsrf.UNSAFE:
            xsrf.check(web_of(conn), conn, conn.headers.get("x-xsrftoken"))
        else:
            site = conn.headers.get("sec-fetch-site")
            if site is not None and site not in ("same-origin", "none"):
                raise Forbidden("cross-site API request refused")
    return ident


async def logged_in_user(conn: HTTPConnection) -> Identity | None:
    """The person a page acts for. Pages are for browsers: only the hub's session cookie logs in here. A request
    with an API token (``Authorization``) is anonymous to pages, so a narrow token can never act through a page
    with its owner's full rights (the API checks a token's scopes; pages act as the person)."""
    ident = await identify(conn)
    return ident if ident is not None and ident.kind == "user" and ident.via == "cookie" else None
