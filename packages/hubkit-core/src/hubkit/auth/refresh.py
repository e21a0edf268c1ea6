"""Applying an authenticator's ``refresh_user`` answer to a stored user: one rule for every caller."""

from __future__ import annotations

from ..interfaces import AuthResult
from ..storage.orm import User


def apply_refresh(user: User, outcome: AuthResult | bool) -> bool:
    """Store what a refresh returned (new auth_state, admin flag); ``True`` when the row changed.

    ``True``/``False`` outcomes change nothing here: "still valid" needs no write, and "log in again" is the
    caller's to report (a failed spawn, a 401)."""
    if not isinstance(outcome, AuthResult):
        return False
    changed = False
    if outcome.auth_state is not None:
        user.auth_state = outcome.auth_state
        changed = True
    if outcome.admin is not None:
        user.admin = outcome.admin
        changed = True
    return changed
