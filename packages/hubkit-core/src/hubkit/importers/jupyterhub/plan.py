"""Decide what importing a JupyterHub database changes in hubkit's, and what is skipped and why.

Pure: it compares what was read from JupyterHub with what hubkit already holds, so running the import a
second time plans nothing. The rules:

- users, groups and named servers are matched by name and created when missing; names hubkit refuses are
  skipped (with the reason) together with everything that belongs to them, and so are user names hubkit's
  logins would spell differently (upper case, other Unicode forms: see ``[auth] normalize_usernames``);
- admin flags are copied one way: a JupyterHub admin becomes a hubkit admin, a hubkit admin is never demoted;
- group properties and user_info are merged key by key (JupyterHub's values win); members are added, never
  removed; user_options are copied onto servers that have none;
- API tokens that users created keep working with their JupyterHub scopes (still capped by what the owner
  holds in hubkit). Servers' own tokens, OAuth session tokens, services' tokens and expired tokens are not
  copied, and a token revoked in hubkit after an earlier import is never brought back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...auth import scopes as sc
from ...auth.jupyterhub_tokens import JupyterHubHash
from ...errors import InvalidName
from ...services.names import canonical_name, check_name
from .actions import (
    AddMembers,
    CreateGroup,
    CreateServer,
    CreateUser,
    ImportToken,
    Plan,
    PromoteAdmin,
    SetGroupProperties,
    SetServerOptions,
    SetUserInfo,
)
from .source import JHToken, JupyterHubData

HUB_CLIENT = "jupyterhub"  # JupyterHub's own OAuth client: the one tokens made through its API belong to
STANDARD_ROLES = frozenset({"user", "admin", "server", "token"})


@dataclass
class HubkitState:
    users: dict[str, tuple[bool, dict[str, Any] | None]]  # name -> (admin, user_info)
    groups: dict[str, tuple[dict[str, Any], set[str]]]  # name -> (properties, member names)
    servers: dict[tuple[str, str], dict[str, Any]]  # (user, server name) -> user_options
    token_hashes: dict[str, int | None]  # JupyterHub hash -> hubkit token id (None: revoked since)


@dataclass(frozen=True)
class Policy:
    allow_named_servers: bool = True
    named_server_limit: int = 0
    lower_usernames: bool = True  # [auth] normalize_usernames


def _valid(name: str, what: str) -> str | None:
    """Why hubkit refuses ``name``, or ``None``."""
    try:
        check_name(name, what=what)
    except InvalidName as exc:
        return str(exc)
    return None


def _user_name_problem(name: str, policy: Policy) -> str | None:
    """Why ``name`` cannot be a hubkit user: refused, or not the form hubkit's logins produce (such a user
    could never log in, and "Alice" next to "alice" would be two accounts for one person)."""
    try:
        canonical = canonical_name(name, lower=policy.lower_usernames)
    except InvalidName as exc:
        return str(exc)
    if canonical != name:
        return (
            f"hubkit's logins name this user {canonical!r} ([auth] normalize_usernames): rename the user in "
            "JupyterHub first, or turn that setting off"
        )
    return None


def _merged(current: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any]:
    return {**(current or {}), **incoming}


def plan_import(
    data: JupyterHubData, state: HubkitState, *, source: str, policy: Policy, now: datetime
) -> Plan:
    plan = Plan(source=source, revision=data.revision)
    admins = _plan_users(plan, data, state, policy)
    _plan_groups(plan, data, state, set(admins))
    _plan_servers(plan, data, state, set(admins), policy)
    for token in data.tokens:
        _plan_token(plan, token, state, admins, now)
    _note_roles(plan, data)
    return plan


def _plan_users(plan: Plan, data: JupyterHubData, state: HubkitState, policy: Policy) -> dict[str, bool]:
    """Plan the users; returns the admin flag each imported user will have (skipped users are absent)."""
    out: dict[str, bool] = {}
    tally = plan.tally["users"]
    for u in data.users:
        why = _user_name_problem(u.name, policy)
        if why:
            plan.skip("user", u.name, why)
            continue
        have = state.users.get(u.name)
        if have is None:
            plan.actions.append(CreateUser(u.name, u.admin, u.created, u.last_activity, u.user_info))
            tally.created += 1
            out[u.name] = u.admin
            continue
        admin, info = have
        changed = False
        if u.admin and not admin:
            plan.actions.append(PromoteAdmin(u.name))
            changed = True
        if u.user_info and _merged(info, u.user_info) != (info or {}):
            plan.actions.append(SetUserInfo(u.name, _merged(info, u.user_info)))
            changed = True
        tally.updated += changed
        tally.unchanged += not changed
        out[u.name] = admin or u.admin
    with_state = sum(1 for u in data.users if u.has_auth_state and u.name in out)
    if with_state:
        plan.notes.append(
            f"{with_state} user(s) had an auth_state, encrypted with JupyterHub's key: not copied; it is "
            "filled again at their next login"
        )
    return out


def _plan_groups(plan: Plan, data: JupyterHubData, state: HubkitState, users: set[str]) -> None:
    tally = plan.tally["groups"]
    for g in data.groups:
        why = _valid(g.name, "group name")
        if why:
            plan.skip("group", g.name, why)
            continue
        left_out = [m for m in g.members if m not in users]
        if left_out:
            plan.notes.append(
                f"group {g.name!r}: member(s) {', '.join(map(repr, left_out))} not added (user skipped)"
            )
        members = tuple(m for m in g.members if m in users)
        have = state.groups.get(g.name)
        if have is None:
            plan.actions.append(CreateGroup(g.name, dict(g.properties)))
            if members:
                plan.actions.append(AddMembers(g.name, members))
            tally.created += 1
            continue
        props, have_members = have
        changed = False
        if g.properties and _merged(props, g.properties) != props:
            plan.actions.append(SetGroupProperties(g.name, _merged(props, g.properties)))
            changed = True
        new = tuple(m for m in members if m not in have_members)
        if new:
            plan.actions.append(AddMembers(g.name, new))
            changed = True
        tally.updated += changed
        tally.unchanged += not changed


def _plan_servers(
    plan: Plan, data: JupyterHubData, state: HubkitState, users: set[str], policy: Policy
) -> None:
    tally = plan.tally["servers"]
    named_count: dict[str, int] = {}
    for user, name in state.servers:
        if name:
            named_count[user] = named_count.get(user, 0) + 1
    running = 0
    for s in data.servers:
        if not s.name and not s.user_options:
            continue  # a default server with nothing to carry: hubkit makes it at the first start
        label = f"{s.user}/{s.name}"
        running += s.running
        if s.user not in users:
            plan.skip("server", label, f"user {s.user!r} was skipped")
            continue
        if s.name:
            why = _valid(s.name, "server name")
            if why:
                plan.skip("server", label, why)
                continue
        have = state.servers.get((s.user, s.name))
        if have is not None:
            if s.user_options and not have:
                plan.actions.append(SetServerOptions(s.user, s.name, dict(s.user_options)))
                tally.updated += 1
            else:
                tally.unchanged += 1
            continue
        if s.name and not policy.allow_named_servers:
            plan.skip("server", label, "named servers are off in hubkit ([hub] allow_named_servers = false)")
            continue
        if s.name and policy.named_server_limit and named_count.get(s.user, 0) >= policy.named_server_limit:
            plan.skip(
                "server",
                label,
                f"{s.user!r} has {policy.named_server_limit} named servers already "
                "([hub] named_server_limit_per_user)",
            )
            continue
        if s.name:
            named_count[s.user] = named_count.get(s.user, 0) + 1
        plan.actions.append(CreateServer(s.user, s.name, s.display_name, dict(s.user_options)))
        tally.created += 1
    if running:
        plan.notes.append(
            f"{running} of these servers were running under JupyterHub: hubkit imports them stopped and "
            "starts new ones (stop JupyterHub's servers yourself)"
        )


def _token_skip_reason(token: JHToken, users: dict[str, bool], now: datetime) -> str | None:
    if token.service is not None:
        return (
            f"token of JupyterHub service {token.service!r}: services are declared in hubkit's config, "
            "where the service can keep this token"
        )
    if token.user is None:
        return "token without an owner"
    if token.user not in users:
        return f"user {token.user!r} was skipped"
    if token.client_id is None:
        return "stale: no OAuth client (JupyterHub deletes such tokens when they are used)"
    if token.client_id != HUB_CLIENT:
        return (
            f"OAuth access token of client {token.client_id!r} (a login to a server or service): people log "
            "in again"
        )
    if token.note.startswith("Server at "):
        return "the API token of a server JupyterHub started: hubkit gives the servers it starts their own"
    if token.expires_at is not None and token.expires_at <= now:
        return f"expired at {token.expires_at.isoformat()}"
    if JupyterHubHash.parse(token.hashed) is None:
        return "its hash is not in a format hubkit can check"
    return None


def _plan_token(
    plan: Plan, token: JHToken, state: HubkitState, users: dict[str, bool], now: datetime
) -> None:
    tally = plan.tally["tokens"]
    label = f"#{token.id} ({token.prefix}…)" + (f" of {token.user!r}" if token.user else "")
    why = _token_skip_reason(token, users, now)
    if why:
        plan.skip("token", label, why)
        return
    assert token.user is not None
    if token.hashed in state.token_hashes:
        if state.token_hashes[token.hashed] is None:
            plan.skip("token", label, "imported before and revoked in hubkit since: not brought back")
        else:
            tally.unchanged += 1
        return
    kept: list[str] = []
    dropped: list[str] = []
    for scope in token.scopes:
        try:
            sc.validate([scope])
        except sc.ScopeError:
            dropped.append(scope)
        else:
            kept.append(scope)
    if token.scopes and not kept:
        plan.skip("token", label, f"none of its scopes exist in hubkit: {', '.join(dropped)}")
        return
    if dropped:
        plan.notes.append(f"token {label}: scopes hubkit does not know were left out: {', '.join(dropped)}")
    owner = sc.owner_scopes(token.user, admin=users[token.user])
    granted = set(sc.flatten(sc.token_scopes(kept, owner=token.user, owner_all=owner)))
    beyond = [
        s for s in kept if not set(sc.flatten(sc.expand([s], owner=token.user))) <= granted and s != "inherit"
    ]
    if beyond:
        plan.notes.append(
            f"token {label}: {token.user!r} does not hold {', '.join(beyond)} in hubkit, so the token "
            "keeps those scopes but they grant nothing (capped by its owner, as in JupyterHub)"
        )
    plan.actions.append(
        ImportToken(
            jupyterhub_id=token.id,
            user=token.user,
            hashed=token.hashed,
            prefix=token.prefix,
            scopes=tuple(kept),
            note=token.note,
            created=token.created,
            expires_at=token.expires_at,
            last_activity=token.last_activity,
        )
    )
    tally.created += 1


def _note_roles(plan: Plan, data: JupyterHubData) -> None:
    """hubkit grants the user and admin roles only: say which custom roles' scopes do not come along."""
    holders: dict[str, list[str]] = {}
    for u in data.users:
        for r in u.roles:
            holders.setdefault(r, []).append(f"user {u.name!r}")
    for g in data.groups:
        for r in g.roles:
            holders.setdefault(r, []).append(f"group {g.name!r}")
    for role, who in sorted(holders.items()):
        if role in STANDARD_ROLES:
            if role == "admin" and any(w.startswith("group") for w in who):
                groups = [w for w in who if w.startswith("group")]
                plan.notes.append(
                    f"role 'admin' of {', '.join(groups)}: hubkit has no group roles; make those members "
                    "admins with [hub] admin_users or the admin page"
                )
            continue
        plan.notes.append(
            f"custom role {role!r} (scopes {', '.join(data.roles.get(role, ())) or 'none'}) of "
            f"{', '.join(who)}: hubkit has no custom roles, so these scopes are not carried over"
        )
