"""Authorisation: may this caller do this to that resource. One rule for the API and the pages.

A caller without any of the needed scopes is refused (:class:`~hubkit.errors.Forbidden`); one that holds them
only for *other* resources is told the resource does not exist (:class:`~hubkit.errors.NotFound`), so scopes
never reveal which users or servers exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..errors import Forbidden, NotFound

HIDDEN = "No access to resources or resources not found"


def require(
    caller: Identity,
    names: tuple[str, ...],
    *,
    user: str | None = None,
    server: str | None = None,
    user_groups: Iterable[str] = (),
    group: str | None = None,
    service: str | None = None,
) -> None:
    """The caller must hold one of ``names``; if it does only with a filter that excludes the resource: 404."""
    if not sc.has_any(caller.scopes, names):
        raise Forbidden(f"Action is not authorized with current scopes; requires any of {list(names)}")
    if user is None and group is None and service is None:
        return
    groups = tuple(user_groups)
    for n in names:
        if sc.allows(
            caller.scopes, n, user=user, server=server, user_groups=groups, group=group, service=service
        ):
            return
    raise NotFound(HIDDEN)


def may(caller: Identity, name: str, **resource: Any) -> bool:
    return sc.allows(caller.scopes, name, **resource)
