"""The hub login session: a signed cookie ``hubkit-session`` (path ``<base>hub/``) plus JupyterHub's
``jupyterhub-session-id`` cookie (path ``/``, unsigned uuid) that user servers use as a cache key and the hub
stores on OAuth tokens so logout can revoke them.

The signed value is ``user_id:cookie_id:session_id``; rotating ``users.cookie_id`` ends every session of a user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import Response

from . import forwarded
from .signing import sign, unsign

if TYPE_CHECKING:
    from ..runtime.hub import Hub

SESSION_COOKIE = "hubkit-session"
SESSION_ID_COOKIE = "jupyterhub-session-id"


@dataclass(frozen=True)
class Session:
    user_id: int
    cookie_id: str
    session_id: str


def hub_prefix(hub: Hub) -> str:
    base = hub.settings.hub.base_url
    if not base.endswith("/"):
        base += "/"
    if not base.startswith("/"):
        base = "/" + base
    return base + "hub/"


def is_secure(hub: Hub, conn: HTTPConnection) -> bool:
    if forwarded.of(conn).scheme == "https":
        return True
    return bool(hub.settings.hub.public_url and hub.settings.hub.public_url.startswith("https:"))


def max_age(hub: Hub) -> int:
    return int(hub.settings.hub.cookie_max_age_days * 86400)


def read_session(hub: Hub, conn: HTTPConnection) -> Session | None:
    raw = unsign(hub.cookie_secret, SESSION_COOKIE, conn.cookies.get(SESSION_COOKIE), max_age=max_age(hub))
    if raw is None:
        return None
    parts = raw.split(":")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return Session(int(parts[0]), parts[1], parts[2])


def new_session_id() -> str:
    return uuid.uuid4().hex


def set_session(hub: Hub, conn: HTTPConnection, response: Response, *, user_id: int, cookie_id: str) -> str:
    """Log the browser in; returns the new session id."""
    sid = new_session_id()
    secure = is_secure(hub, conn)
    value = sign(hub.cookie_secret, SESSION_COOKIE, f"{user_id}:{cookie_id}:{sid}")
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age(hub),
        path=hub_prefix(hub),
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(SESSION_ID_COOKIE, sid, path="/", httponly=True, samesite="lax", secure=secure)
    return sid


def clear_session(hub: Hub, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=hub_prefix(hub))
    response.delete_cookie(SESSION_ID_COOKIE, path="/")
