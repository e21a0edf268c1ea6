"""Does a visitor's scope list grant access to this server? (JupyterHub scope strings, filters understood.)

``access:servers`` covers every server; ``access:servers!user=alice`` covers all of alice's servers;
``access:servers!server=alice/nb1`` covers one. Group filters cannot be resolved here (no group
membership is known to the server), so they never match, as in JupyterHub's singleuser.
"""

from __future__ import annotations

from collections.abc import Iterable


def _split(scope: str) -> tuple[str, str, str]:
    base, _, flt = scope.partition("!")
    kind, _, value = flt.partition("=")
    return base, kind, value


def _covers(held: str, required: str) -> bool:
    hbase, hkind, hval = _split(held)
    rbase, rkind, rval = _split(required)
    if hbase != rbase:
        return False
    if not hkind:
        return True  # unfiltered: every resource of that kind
    if (hkind, hval) == (rkind, rval):
        return True
    # a user filter covers that user's servers
    return hkind == "user" and rkind == "server" and rval.split("/", 1)[0] == hval


def allowed(held: Iterable[str], required: Iterable[str]) -> bool:
    req = list(required)
    return any(_covers(h, r) for h in held for r in req)
