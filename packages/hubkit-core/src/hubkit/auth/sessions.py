"""The hub login session: a signed cookie ``hubkit-session`` (path ``<base>hub/``) plus JupyterHub's
``jupyterhub-session-id`` cookie (path ``/``, unsigned uuid) that user servers use as a cache key and the hub
stores on OAuth tokens so logout can revoke them.

The signed value is ``user_id:cookie_id:session_id``; rotating ``users.cookie_id`` ends every session of a user.
This module makes and reads that value; setting the cookies on a response is :mod:`hubkit.web.cookies`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .signing import sign, unsign

SESSION_COOKIE = "hubkit-session"
SESSION_ID_COOKIE = "jupyterhub-session-id"


@dataclass(frozen=True)
class Session:
    user_id: int
    cookie_id: str
    session_id: str


def read_value(secret: bytes, signed: str | None, *, max_age: float) -> Session | None:
    """The session a signed cookie value names, or ``None`` (missing, tampered with, expired, malformed)."""
    raw = unsign(secret, SESSION_COOKIE, signed, max_age=max_age)
    if raw is None:
        return None
    parts = raw.split(":")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return Session(int(parts[0]), parts[1], parts[2])


def new_session_id() -> str:
    return uuid.uuid4().hex


def signed_value(secret: bytes, user_id: int, cookie_id: str, session_id: str) -> str:
    return sign(secret, SESSION_COOKIE, f"{user_id}:{cookie_id}:{session_id}")
