"""JupyterHub-compatible scopes: names, roles, expansion and filter checks.

A scope is ``name`` or ``name!filter`` with filter ``user=u``, ``server=u/s``, ``group=g`` or ``service=s``.
Expanded scopes are a mapping ``name -> set of filters`` where the empty filter ``""`` means "unrestricted".
A token never holds more than its owner: its expanded scopes are intersected with the owner's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Scopes = dict[str, set[str]]
ALL = ""

# parent -> direct subscopes (JupyterHub 6 names)
SCOPE_TREE: dict[str, tuple[str, ...]] = {
    "admin:users": ("admin:auth_state", "users", "read:roles:users", "delete:users"),
    "users": ("read:users", "list:users", "users:activity"),
    "read:users": ("read:users:name", "read:users:groups", "read:users:activity"),
    "list:users": ("read:users:name",),
    "users:activity": ("read:users:activity",),
    "admin:servers": ("admin:server_state", "servers"),
    "servers": ("read:servers", "start:servers", "delete:servers"),
    "read:servers": ("read:users:name",),
    "tokens": ("read:tokens",),
    "admin:groups": ("groups", "read:roles:groups", "delete:groups"),
    "groups": ("read:groups", "list:groups"),
    "read:groups": ("read:groups:name",),
    "list:groups": ("read:groups:name",),
    "admin:services": ("list:services", "read:services", "read:roles:services"),
    "list:services": ("read:services:name",),
    "read:services": ("read:services:name",),
    "read:roles": ("read:roles:users", "read:roles:groups", "read:roles:services"),
    "shares": ("read:shares", "users:shares"),
}
LEAVES = frozenset(
    {
        "admin:auth_state",
        "read:roles:users",
        "delete:users",
        "read:users:name",
        "read:users:groups",
        "read:users:activity",
        "admin:server_state",
        "start:servers",
        "delete:servers",
        "read:tokens",
        "read:roles:groups",
        "delete:groups",
        "read:groups:name",
        "read:roles:services",
        "read:services:name",
        "access:servers",
        "access:services",
        "read:hub",
        "proxy",
        "shutdown",
        "read:metrics",
        "admin-ui",
        "read:shares",
        "users:shares",
    }
)
KNOWN = frozenset(SCOPE_TREE) | LEAVES | {"self", "inherit"}

SELF_SCOPES = (
    "read:users",
    "users:activity",
    "servers",
    "tokens",
    "access:servers",
    "read:shares",
    "users:shares",
)
ROLES: dict[str, tuple[str, ...]] = {
    "user": ("self",),
    "admin": (
        "admin-ui",
        "admin:users",
        "admin:servers",
        "admin:services",
        "tokens",
        "admin:groups",
        "list:services",
        "read:services",
        "read:hub",
        "proxy",
        "shutdown",
        "access:services",
        "access:servers",
        "read:roles",
        "read:metrics",
        "shares",
    ),
    "server": ("users:activity!user", "access:servers!server"),
    "token": ("inherit",),
}
IDENTIFY = ("read:users:name!user", "read:users:groups!user")
FILTER_KINDS = ("user", "server", "group", "service")


class ScopeError(ValueError):
    """An unknown scope name or malformed filter (shown to the caller as a 400)."""


def parse(scope: str) -> tuple[str, str]:
    name, _, filt = scope.partition("!")
    return name, filt


def validate(scopes: Iterable[str]) -> list[str]:
    """Check names and filter syntax of scopes a caller asked for; returns them unchanged."""
    out = []
    for s in scopes:
        if not isinstance(s, str) or not s or len(s) > 512:
            raise ScopeError(f"invalid scope {s!r}")
        name, filt = parse(s)
        if name not in KNOWN:
            raise ScopeError(f"unknown scope {name!r}")
        if filt and filt not in ("user", "server"):
            kind, eq, value = filt.partition("=")
            if kind not in FILTER_KINDS or not eq or not value:
                raise ScopeError(f"invalid scope filter {filt!r} in {s!r}")
        out.append(s)
    return out


def expand(
    scopes: Iterable[str], *, owner: str | None = None, server: str | None = None, owner_kind: str = "user"
) -> Scopes:
    """Expand parent scopes and metascopes; bare ``!user``/``!server`` resolve to ``owner``/``server``.

    ``inherit`` is *not* expanded here (the caller substitutes the owner's scopes).
    """
    out: Scopes = {}

    def add(name: str, filt: str) -> None:
        bucket = out.setdefault(name, set())
        if ALL in bucket:
            return
        if filt == ALL:
            bucket.clear()
        bucket.add(filt)
        for sub in SCOPE_TREE.get(name, ()):
            add(sub, filt)

    for raw in scopes:
        name, filt = parse(raw)
        if filt == "user":
            if owner is None or owner_kind != "user":
                continue
            filt = f"user={owner}"
        elif filt == "server":
            if owner is None or server is None:
                continue
            filt = f"server={owner}/{server}"
        if name == "self":
            if owner is None or owner_kind != "user":
                continue
            for sub in SELF_SCOPES:
                add(sub, f"user={owner}")
            continue
        if name == "inherit":
            continue
        if name not in KNOWN:
            continue
        add(name, filt)
    return out


def role_scopes(admin: bool) -> list[str]:
    return list(ROLES["user"]) + (list(ROLES["admin"]) if admin else [])


def owner_scopes(name: str, *, admin: bool, kind: str = "user", extra: Iterable[str] = ()) -> Scopes:
    """Everything a user (or service) may do."""
    base = role_scopes(admin) if kind == "user" else (list(ROLES["admin"]) if admin else [])
    return expand([*base, *extra], owner=name, owner_kind=kind)


def _covered(filt: str, owner_filters: set[str]) -> bool:
    if ALL in owner_filters or filt in owner_filters:
        return True
    if filt.startswith("server="):
        user = filt[len("server=") :].split("/", 1)[0]
        return f"user={user}" in owner_filters
    return False


def intersect(token: Scopes, owner: Scopes) -> Scopes:
    """What a token may really do: its scopes, cut down to what its owner holds."""
    out: Scopes = {}
    for name, filters in token.items():
        have = owner.get(name)
        if not have:
            continue
        keep: set[str] = set()
        for f in filters:
            if f == ALL:
                keep |= have
            elif _covered(f, have):
                keep.add(f)
        if keep:
            out[name] = {ALL} if ALL in keep else keep
    return out


def token_scopes(
    requested: Iterable[str], *, owner: str, owner_all: Scopes, server: str | None = None, kind: str = "user"
) -> Scopes:
    req = list(requested)
    if "inherit" in req:
        return {k: set(v) for k, v in owner_all.items()}
    return intersect(expand(req, owner=owner, server=server, owner_kind=kind), owner_all)


def allows(
    scopes: Mapping[str, set[str]],
    name: str,
    *,
    user: str | None = None,
    server: str | None = None,
    user_groups: Iterable[str] = (),
    group: str | None = None,
    service: str | None = None,
) -> bool:
    """Whether ``name`` covers this resource (a user, one of their servers, a group, a service)."""
    filters = scopes.get(name)
    if not filters:
        return False
    if ALL in filters:
        return True
    if user is not None:
        if f"user={user}" in filters:
            return True
        if server is not None and f"server={user}/{server}" in filters:
            return True
        if any(f"group={g}" in filters for g in user_groups):
            return True
    if group is not None and f"group={group}" in filters:
        return True
    return service is not None and f"service={service}" in filters


def has_any(scopes: Mapping[str, set[str]], names: Iterable[str]) -> bool:
    return any(scopes.get(n) for n in names)


def flatten(scopes: Mapping[str, set[str]]) -> list[str]:
    """Sorted JupyterHub strings, e.g. ``access:servers!server=alice/``."""
    return sorted(n if f == ALL else f"{n}!{f}" for n, fs in scopes.items() for f in fs)


def access_scope_covers(scopes: Mapping[str, set[str]], required: Iterable[str]) -> bool:
    """True when the holder has at least one of ``required`` (strings like ``access:servers!server=a/``)."""
    for raw in required:
        name, filt = parse(raw)
        have = scopes.get(name)
        if not have:
            continue
        if ALL in have or (filt and _covered(filt, have)):
            return True
    return False
