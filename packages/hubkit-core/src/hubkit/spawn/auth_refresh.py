"""Refresh a user's upstream credentials before their server starts.

OAuth tokens expire; a server started with a stale one fails later in confusing ways. So the authenticator
gets a chance to refresh (or to say "log in again") before every spawn, and a refreshed ``auth_state`` is
stored encrypted for the server to fetch from the hub, never frozen into its environment.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, select

from ..auth.refresh import apply_refresh
from ..errors import SpawnFailed
from ..interfaces import AuthResult, ServerSpec
from ..storage.orm import User, table_of
from ..storage.reads import Query
from .context import Spawning

log = logging.getLogger("hubkit.spawn")

# only the sealed column: a whole user row would bring its servers and groups along
SEALED_STATE = Query(select(table_of(User).c.auth_state).where(table_of(User).c.id == bindparam("user_id")))


async def refresh_before_spawn(sp: Spawning, spec: ServerSpec) -> None:
    auth = sp.parts.authenticator
    if auth is None or spec.user.id is None:
        return
    row = await sp.storage.reads.one(SEALED_STATE, user_id=spec.user.id)
    sealed = row[0] if row is not None else None
    try:
        auth_state = sp.storage.crypt.open(sealed) if sealed is not None else None
    except RuntimeError as exc:  # undecryptable (keys rotated away), or no key: the authenticator decides
        log.warning("auth state of %s cannot be read: %s", spec.user.name, exc)
        auth_state = None
    result = await auth.refresh_user(spec.user, auth_state)
    if result is False:
        raise SpawnFailed(
            "your login has expired: log out and log in again, then start the server",
            reason_code="auth-expired",
        )
    if isinstance(result, AuthResult) and result.auth_state is not None:
        async with sp.storage.tx() as s:
            user = await s.get(User, spec.user.id)
            if user is not None and apply_refresh(user, result):
                await s.commit()
