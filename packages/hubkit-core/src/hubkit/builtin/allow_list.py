"""The core's own access policy: ``[auth] allowed_users`` and ``blocked_users``.

An instance is registered by the hub as a plugin (``trylast``, so other plugins' ``hubkit_check_allowed``
run first); any ``False`` refuses the login.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..interfaces import AuthResult
from ..plugins import hookimpl


class AllowList:
    __name__ = "allow_list"

    def __init__(
        self, allowed: Iterable[str] = (), blocked: Iterable[str] = (), allow_all: bool = True
    ) -> None:
        self.allowed = frozenset(allowed)
        self.blocked = frozenset(blocked)
        self.allow_all = allow_all

    @hookimpl(trylast=True)
    def hubkit_check_allowed(self, result: AuthResult) -> bool | None:
        if result.name in self.blocked:
            return False
        if self.allowed:
            return result.name in self.allowed
        return None if self.allow_all else False
