"""The hub's cookies: the login session (``hubkit-session`` + JupyterHub's ``jupyterhub-session-id``) and the
short-lived signed state of a redirect login. All ``HttpOnly``, ``SameSite``, and ``Secure`` under TLS."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..auth import forwarded
from ..auth.sessions import (
    SESSION_COOKIE,
    SESSION_ID_COOKIE,
    Session,
    new_session_id,
    read_value,
    signed_value,
)
from ..auth.signing import sign, unsign
from .context import WebContext, web_of

STATE_COOKIE = "hubkit-oauth-state"
STATE_MAX_AGE = 600


def is_secure(web: WebContext, conn: HTTPConnection) -> bool:
    if forwarded.of(conn).scheme == "https":
        return True
    hub = web.services.settings.hub
    return any(u and u.startswith("https:") for u in (hub.public_url, hub.subdomain_host))


def read_session(conn: HTTPConnection) -> Session | None:
    web = web_of(conn)
    return read_value(web.cookie_secret, conn.cookies.get(SESSION_COOKIE), max_age=web.cookie_max_age)


def set_session(conn: HTTPConnection, response: Response, *, user_id: int, cookie_id: str) -> str:
    """Log the browser in; returns the new session id."""
    web = web_of(conn)
    sid = new_session_id()
    secure = is_secure(web, conn)
    response.set_cookie(
        SESSION_COOKIE,
        signed_value(web.cookie_secret, user_id, cookie_id, sid),
        max_age=web.cookie_max_age,
        path=web.urls.hub_prefix,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(SESSION_ID_COOKIE, sid, path="/", httponly=True, samesite="lax", secure=secure)
    return sid


def clear_session(conn: HTTPConnection, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=web_of(conn).urls.hub_prefix)
    response.delete_cookie(SESSION_ID_COOKIE, path="/")


def set_login_state(conn: HTTPConnection, response: Response, state: str) -> None:
    """The opaque state of a redirect login (PKCE verifier, nonce...), signed, for its callback."""
    web = web_of(conn)
    response.set_cookie(
        STATE_COOKIE,
        sign(web.cookie_secret, STATE_COOKIE, state),
        max_age=STATE_MAX_AGE,
        path=web.urls.hub_prefix,
        httponly=True,
        samesite="lax",
        secure=is_secure(web, conn),
    )


def take_login_state(conn: HTTPConnection, response: Response | None = None) -> str | None:
    """The state of the redirect login this callback completes (``None``: expired, forged, other browser);
    cleared on ``response`` when given."""
    web = web_of(conn)
    if response is not None:
        response.delete_cookie(STATE_COOKIE, path=web.urls.hub_prefix)
    return unsign(web.cookie_secret, STATE_COOKIE, conn.cookies.get(STATE_COOKIE), max_age=STATE_MAX_AGE)
