"""Users: list, create, read, change, rename and delete, for the REST API, the admin page and the CLI.

Deleting a user stops their servers through the spawn engine first, so no process or route is orphaned.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..errors import BadRequest, Conflict, Forbidden, InvalidName, NotFound
from ..interfaces import UserInfo
from ..storage.orm import APIToken, Group, Server, ServerStatus, Service, User
from ..storage.races import claim_user
from . import access, userrows, views
from .access import HIDDEN
from .context import ServiceContext
from .names import check_name
from .names import normalize as _normalize

READ_USER = (
    "read:users",
    "read:users:name",
    "read:servers",
    "read:users:groups",
    "read:users:activity",
    "read:roles:users",
)
STATES = ("active", "ready", "inactive")
SORTS = {"id": User.id, "name": User.name, "last_activity": User.last_activity, "created": User.created}


async def normalize(ctx: ServiceContext, raw: str) -> str:
    return await _normalize(ctx.hooks, raw, lower=ctx.settings.auth.normalize_usernames)


def info(user: User | userrows.UserRow) -> UserInfo:
    return UserInfo(name=user.name, admin=user.admin, groups=tuple(g.name for g in user.groups), id=user.id)


async def get_user(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()


async def require_user(session: AsyncSession, name: str) -> User:
    user = await get_user(session, name)
    if user is None:
        raise NotFound(f"No such user: {name}")
    return user


async def visible_user(session: AsyncSession, caller: Identity, scopes: tuple[str, ...], name: str) -> User:
    """The user ``name`` if the caller holds one of ``scopes`` for them (404 when hidden or missing)."""
    access.require(caller, scopes)
    user = await get_user(session, name)
    if user is None:
        raise NotFound(HIDDEN)
    access.require(caller, scopes, user=user.name, user_groups=[g.name for g in user.groups])
    return user


def new_user(name: str, *, admin: bool = False) -> User:
    return User(name=check_name(name), admin=admin, cookie_id=secrets.token_hex(16), servers=[], groups=[])


def auth_state_of(ctx: ServiceContext, user: User) -> Any:
    """The decrypted auth state, or ``None`` without keys or when the keys cannot open it."""
    if not ctx.crypt.enabled:
        return None
    try:
        return user.auth_state
    except RuntimeError:
        return None


# ---- creating -----------------------------------------------------------------------------------------------


async def create_users(ctx: ServiceContext, names: Iterable[str], *, admin: bool = False) -> list[User]:
    """Create the given users (existing ones skipped); fires ``hubkit_user_created`` after commit. A name a
    plugin refuses (``hubkit_check_new_user``) is :class:`InvalidName` and none of them is created."""
    wanted: list[str] = []
    for n in names:
        n = await normalize(ctx, check_name(n))
        if n not in wanted:
            wanted.append(n)
    async with ctx.storage.session() as session:
        existing = set((await session.execute(select(User.name).where(User.name.in_(wanted)))).scalars())
    for n in wanted:
        refusal = None if n in existing else await ctx.hooks.check_new_user(n)
        if refusal:
            more = "; no user was added" if len(wanted) > 1 else ""
            raise InvalidName(f"{refusal}{more}")
    async with ctx.storage.session() as session:
        for attempt in range(3):  # a concurrent create of one of these names makes us re-read and skip it
            existing = set((await session.execute(select(User.name).where(User.name.in_(wanted)))).scalars())
            created = [new_user(n, admin=admin) for n in wanted if n not in existing]
            session.add_all(created)
            try:
                await session.commit()
                break
            except IntegrityError:
                await session.rollback()
                if attempt == 2:
                    raise
    for u in created:
        await ctx.hooks.user_created(UserInfo(name=u.name, admin=u.admin, id=u.id))
    return created


def _may_grant_admin(caller: Identity, admin: bool) -> None:
    if admin and not caller.admin:
        raise Forbidden("Only admins can grant admin rights")


async def add_users(
    ctx: ServiceContext, caller: Identity, names: list[str], *, admin: bool
) -> list[dict[str, Any]]:
    """``POST /users``: 409 when every name exists already."""
    access.require(caller, ("admin:users",))
    _may_grant_admin(caller, admin)
    for n in names:
        check_name(n)
    created = await create_users(ctx, names, admin=admin)
    if not created:
        raise Conflict("All of the requested users already exist")
    async with ctx.storage.session() as session:
        rows = (await session.execute(select(User).where(User.id.in_([u.id for u in created])))).scalars()
        return [views.user_model(ctx.urls, u, caller) for u in rows]


async def add_user(ctx: ServiceContext, caller: Identity, name: str, *, admin: bool) -> dict[str, Any]:
    """``POST /users/{name}``."""
    access.require(caller, ("admin:users",))
    _may_grant_admin(caller, admin)
    check_name(name)
    async with ctx.storage.session() as session:
        if await get_user(session, name) is not None:
            raise Conflict(f"User {name} already exists")
    created = await create_users(ctx, [name], admin=admin)
    if not created:
        raise Conflict(f"User {name} already exists")
    async with ctx.storage.session() as session:
        return views.user_model(ctx.urls, await require_user(session, created[0].name), caller)


# ---- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserQuery:
    """What ``GET /users`` asks for; ``count`` says whether the total is wanted (pagination envelope)."""

    offset: int
    limit: int
    count: bool
    state: str | None = None
    name_filter: str | None = None
    sort: str = "id"
    include_stopped: bool = False


def _scope_filter(filters: set[str]) -> ColumnElement[bool] | None:
    if sc.ALL in filters:
        return None
    names = {f[5:] for f in filters if f.startswith("user=")}
    names |= {f[7:].split("/", 1)[0] for f in filters if f.startswith("server=")}
    groups = {f[6:] for f in filters if f.startswith("group=")}
    conds: list[ColumnElement[bool]] = []
    if names:
        conds.append(User.name.in_(names))
    if groups:
        conds.append(User.groups.any(Group.name.in_(groups)))
    return or_(*conds) if conds else false()


def name_like(text: str) -> ColumnElement[bool]:
    esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(User.name).like(f"%{esc.lower()}%", escape="\\")


def _active() -> ColumnElement[bool]:
    return User.servers.any(Server.status != ServerStatus.STOPPED)


async def list_users(ctx: ServiceContext, caller: Identity, q: UserQuery) -> tuple[list[dict[str, Any]], int]:
    """``GET /users``: the page of users the caller may list, and the total (or the page's length)."""
    access.require(caller, ("list:users",))
    conds: list[ColumnElement[bool]] = []
    scope_cond = _scope_filter(caller.scopes["list:users"])
    if scope_cond is not None:
        conds.append(scope_cond)
    if q.state is not None:
        if q.state not in STATES:
            raise BadRequest(f"Unrecognized state filter: {q.state[:32]!r}; use one of {sorted(STATES)}")
        if q.state == "active":
            conds.append(_active())
        elif q.state == "ready":
            conds.append(User.servers.any(Server.status == ServerStatus.RUNNING))
        else:
            conds.append(~_active())
    if q.name_filter:
        conds.append(name_like(q.name_filter))
    api_sorts = userrows.SORTABLE
    desc = q.sort.startswith("-")
    if q.sort.lstrip("-") not in api_sorts:
        raise BadRequest(f"sort must be one of {sorted(api_sorts)} (optionally prefixed with '-')")
    where = and_(*conds) if conds else None
    users, total = await userrows.load_page(
        ctx.storage, where, sort=q.sort.lstrip("-"), desc=desc, offset=q.offset, limit=q.limit
    )
    if total is None:
        total = 0
        if q.count and q.offset > 0:  # past the end: nobody was counted on the page
            count_q = select(func.count(User.id))
            if where is not None:
                count_q = count_q.where(where)
            async with ctx.storage.session() as session:
                total = int((await session.execute(count_q)).scalar_one())
    if not q.count:
        total = len(users)
    items = [views.user_model(ctx.urls, u, caller, include_stopped=q.include_stopped) for u in users]
    return items, total


async def user_model(
    ctx: ServiceContext, caller: Identity, name: str, *, include_stopped: bool
) -> dict[str, Any]:
    """``GET /users/{name}``: fields per the caller's scopes; ``auth_state`` only with ``admin:auth_state``."""
    access.require(caller, READ_USER)
    user = await userrows.load_one(ctx.storage, name)
    if user is None:
        raise NotFound(HIDDEN)
    access.require(caller, READ_USER, user=user.name, user_groups=[g.name for g in user.groups])
    model = views.user_model(ctx.urls, user, caller, include_stopped=include_stopped)
    if access.may(caller, "admin:auth_state", user=user.name):
        # auth_state is decrypted only when it may be shown; without a key it is always null, so the
        # ORM re-read is skipped
        full = None
        if ctx.crypt.enabled:
            async with ctx.storage.session() as session:
                full = await get_user(session, name)
        model["auth_state"] = auth_state_of(ctx, full) if full is not None else None
    return model


async def whoami(ctx: ServiceContext, caller: Identity) -> dict[str, Any]:
    """``GET /user``: any valid token may ask who it is; the identify scopes are added on the fly."""
    scopes = {k: set(v) for k, v in caller.scopes.items()}
    if caller.kind == "user":
        for name, filters in sc.expand(sc.IDENTIFY, owner=caller.name).items():
            scopes.setdefault(name, set()).update(filters)
    view = replace(caller, scopes=scopes)
    model: dict[str, Any]
    if caller.kind == "user":
        user = await userrows.load_by_id(ctx.storage, caller.id)
        if user is None:
            raise Forbidden("Missing or invalid credentials.")
        model = views.user_model(ctx.urls, user, view)
    else:
        async with ctx.storage.session() as session:
            svc = await session.get(Service, caller.id)
            if svc is None:
                raise Forbidden("Missing or invalid credentials.")
            model = views.service_model(ctx.urls, svc)
    model["token_id"] = f"a{caller.token_id}" if caller.token_id is not None else None
    model["session_id"] = caller.session_id
    model["scopes"] = sc.flatten(scopes)
    return model


# ---- changing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserChanges:
    """``PATCH /users/{name}``: only the fields given are changed (``auth_state`` may be set to null)."""

    name: str | None = None
    admin: bool | None = None
    groups: list[str] | None = None
    set_auth_state: bool = False
    auth_state: dict[str, Any] | None = None


async def rename_user(session: AsyncSession, user: User, new_name: str) -> None:
    check_name(new_name)
    if new_name == user.name:
        return
    if await get_user(session, new_name) is not None:
        raise Conflict(f"User {new_name} already exists")
    # claimed first, then the servers read afresh: a start that got in before sees the old name throughout
    if not await claim_user(session, user.name):
        raise NotFound(f"No such user {user.name}")
    if await has_active_server(session, user.id):
        raise Conflict(f"Stop {user.name}'s servers before renaming")
    user.name = new_name


async def change_user(
    ctx: ServiceContext, caller: Identity, name: str, changes: UserChanges
) -> dict[str, Any]:
    async with ctx.storage.session() as session:
        user = await visible_user(session, caller, ("admin:users",), name)
        if (user.admin or changes.admin) and not caller.admin:
            raise Forbidden("Only admins can modify admin users or grant admin rights")
        if changes.name is not None:
            await rename_user(session, user, await normalize(ctx, changes.name))
        if changes.admin is not None:
            user.admin = changes.admin
        if changes.groups is not None:
            wanted = changes.groups
            groups = list((await session.execute(select(Group).where(Group.name.in_(wanted)))).scalars())
            missing = set(wanted) - {g.name for g in groups}
            if missing:
                raise BadRequest(f"No such group(s): {sorted(missing)[:10]}")
            user.groups = groups
        if changes.set_auth_state:
            if not ctx.crypt.enabled:
                raise BadRequest("auth_state cannot be stored: no encryption key configured")
            user.auth_state = changes.auth_state
        await session.commit()
        user = await require_user(session, user.name)
        model = views.user_model(ctx.urls, user, caller)
        model["auth_state"] = auth_state_of(ctx, user)
    return model


async def set_admin(ctx: ServiceContext, name: str, admin: bool) -> None:
    async with ctx.storage.session() as session:
        user = await require_user(session, name)
        user.admin = admin
        await session.commit()


async def rename(ctx: ServiceContext, name: str, new_name: str) -> str:
    async with ctx.storage.session() as session:
        user = await require_user(session, name)
        new = await normalize(ctx, new_name)
        await rename_user(session, user, new)
        await session.commit()
    return new


async def revoke_all_tokens(ctx: ServiceContext, name: str) -> int:
    """Delete every API and OAuth token of a user and end their browser sessions (server tokens survive)."""
    async with ctx.storage.session() as session:
        user = await require_user(session, name)
        res = await session.execute(
            delete(APIToken).where(APIToken.user_id == user.id, APIToken.kind != "server")
        )
        user.cookie_id = secrets.token_hex(16)
        await session.commit()
    return int(getattr(res, "rowcount", 0) or 0)


# ---- deleting -----------------------------------------------------------------------------------------------


async def stop_all_servers(ctx: ServiceContext, name: str, *, remove: bool, reason: str) -> bool:
    """Stop every server of ``name``; ``True`` when all are stopped."""
    async with ctx.storage.session() as session:
        user = await require_user(session, name)
        servers = [(s.name, s.status) for s in user.servers]
    done = True
    for server_name, status in servers:
        if status == ServerStatus.STOPPED and not (remove and server_name):
            continue
        done = (
            await ctx.spawns.stop(name, server_name, remove=remove and bool(server_name), reason=reason)
            and done
        )
    return done


async def delete_user(ctx: ServiceContext, name: str, *, reason: str = "user deleted") -> None:
    for _ in range(3):  # a start that slipped in between the stop and the delete is stopped on the next round
        if not await stop_all_servers(ctx, name, remove=True, reason=reason):
            raise BadRequest(f"{name}'s servers are still stopping; try again shortly")
        async with ctx.storage.session() as session:
            # a start of theirs runs before or after this, never across it
            if not await claim_user(session, name):
                raise NotFound(f"No such user {name}")
            user = await require_user(session, name)
            if await has_active_server(session, user.id):
                continue
            uinfo = info(user)
            await session.execute(delete(APIToken).where(APIToken.user_id == user.id))
            await session.delete(user)
            await session.commit()
        await ctx.hooks.user_deleted(uinfo)
        return
    raise Conflict(f"{name}'s servers keep being started; try again")


async def has_active_server(session: AsyncSession, user_id: int) -> bool:
    """Read afresh (not from a loaded relationship): the answer must be as of the caller's claim."""
    found = await session.execute(
        select(Server.id).where(Server.user_id == user_id, Server.status != ServerStatus.STOPPED).limit(1)
    )
    return found.first() is not None


async def remove_user(ctx: ServiceContext, caller: Identity, name: str) -> None:
    """``DELETE /users/{name}``."""
    async with ctx.storage.session() as session:
        user = await visible_user(session, caller, ("delete:users",), name)
        if caller.kind == "user" and caller.name == user.name:
            raise BadRequest("Cannot delete yourself")
        if user.admin and not caller.admin:
            raise Forbidden("Only admins can delete admin users")
    await delete_user(ctx, name)
