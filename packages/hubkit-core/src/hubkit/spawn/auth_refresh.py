"""Refresh a user's upstream credentials before their server starts.

OAuth tokens expire; a server started with a stale one fails later in confusing ways. So the authenticator
gets a chance to refresh (or to say "log in again") before every spawn, and a refreshed ``auth_state`` is
stored encrypted for the server to fetch from the hub, never frozen into its environment.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..auth.refresh import apply_refresh
from ..errors import SpawnFailed
from ..interfaces import AuthResult, ServerSpec
from ..storage.orm import User

if TYPE_CHECKING:
    from .engine import SpawnEngine

log = logging.getLogger("hubkit.spawn")


async def refresh_before_spawn(engine: SpawnEngine, spec: ServerSpec) -> None:
    auth = engine.authenticator
    refresh = getattr(auth, "refresh_user", None) if auth is not None else None
    if refresh is None or spec.user.id is None:
        return
    async with engine.db() as s:
        user = await s.get(User, spec.user.id)
        try:
            auth_state = user.auth_state if user is not None else None
        except RuntimeError as exc:  # undecryptable (keys rotated away): the authenticator decides
            log.warning("auth state of %s cannot be read: %s", spec.user.name, exc)
            auth_state = None
    result = await refresh(spec.user, auth_state)
    if result is False:
        raise SpawnFailed(
            "your login has expired: log out and log in again, then start the server", reason_code="auth-expired"
        )
    if isinstance(result, AuthResult) and result.auth_state is not None:
        async with engine.tx() as s:
            user = await s.get(User, spec.user.id)
            if user is not None and apply_refresh(user, result):
                await s.commit()
