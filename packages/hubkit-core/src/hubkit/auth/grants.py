"""What a new token (or a new service) may hold: never more than whoever asks for it.

One rule for every place that hands out power — the token API, the token page, the OAuth provider, runtime
services — so it cannot be skipped in one of them: the new scopes are capped by the **caller's** scopes (the
calling token's, or the logged-in user's), whoever owns the result, admins included. ``inherit`` (or asking
for nothing) means "what the caller holds", never what the owner holds. Only the CLI, which runs with the
database in hand, is exempt.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import scopes as sc


class ScopeNotHeld(Exception):
    """The owner does not hold a requested scope (400)."""


class ExceedsCaller(Exception):
    """The caller does not hold a requested scope (403)."""


def _missing(wanted: sc.Scopes, have: sc.Scopes) -> list[str]:
    capped = sc.intersect(wanted, have)
    return sorted(
        n for n, fs in wanted.items() if not (sc.ALL in capped.get(n, set()) or fs <= capped.get(n, set()))
    )


def covers(have: sc.Scopes, wanted: sc.Scopes) -> bool:
    """Whether ``have`` includes every scope and filter of ``wanted``."""
    return not _missing(wanted, have)


def new_token_scopes(
    requested: Iterable[str], *, caller: sc.Scopes, owner: str, owner_all: sc.Scopes
) -> list[str]:
    """The scopes to store on a token that ``caller`` mints for ``owner``.

    Explicit scopes are checked, not trimmed: one the owner lacks is :class:`ScopeNotHeld`, one the caller
    lacks is :class:`ExceedsCaller`. ``inherit`` is stored as such only when the caller holds everything the
    owner does (the owner's own session, an unrestricted admin); otherwise the caller's scopes, cut down to the
    owner's, are written out explicitly, so the new token can never outgrow its maker.
    """
    req = list(requested) or ["inherit"]
    explicit = [s for s in req if s != "inherit"]
    if explicit:
        wanted = sc.expand(explicit, owner=owner)
        not_owned = _missing(wanted, owner_all)
        if not_owned:
            raise ScopeNotHeld(f"Not assigning requested scopes {not_owned[:10]} not held by {owner}")
        beyond = _missing(wanted, caller)
        if beyond:
            raise ExceedsCaller(
                f"Cannot create a token with more permissions than the caller: {beyond[:10]} not held"
            )
    if len(explicit) == len(req):
        return explicit
    inherited = sc.intersect(owner_all, caller)
    if covers(inherited, owner_all):
        return ["inherit", *explicit] if explicit else ["inherit"]
    return sorted({*sc.flatten(inherited), *explicit})


def held_by(raw_scopes: Iterable[str], have: sc.Scopes, *, owner: str) -> list[str]:
    """The subset of ``raw_scopes`` (as written) that ``have`` fully covers; used where asking for more is
    not an error but simply not granted (OAuth scopes of a client)."""
    return [s for s in raw_scopes if covers(have, sc.expand([s], owner=owner))]
