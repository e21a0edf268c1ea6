"""Groups: list, create, read, delete, membership and properties (the REST API and the admin page)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..errors import Conflict, NotFound
from ..storage.orm import Group, User
from ..storage.races import retry_unique
from . import access, views
from .access import HIDDEN
from .context import ServiceContext
from .names import check_name

READ_GROUP = ("read:groups", "read:groups:name", "read:roles:groups")


async def get_group(session: AsyncSession, name: str) -> Group | None:
    return (await session.execute(select(Group).where(Group.name == name))).scalar_one_or_none()


async def require_group(session: AsyncSession, name: str) -> Group:
    group = await get_group(session, name)
    if group is None:
        raise NotFound(f"No such group: {name}")
    return group


async def users_by_name(session: AsyncSession, names: Iterable[Any]) -> list[User]:
    wanted = [check_name(n) for n in names]
    found = list((await session.execute(select(User).where(User.name.in_(wanted)))).scalars())
    missing = set(wanted) - {u.name for u in found}
    if missing:
        raise NotFound(f"No such user(s): {', '.join(sorted(missing))}")
    return found


async def new_group(session: AsyncSession, name: str, members: Iterable[str] = ()) -> Group:
    check_name(name, what="group name")
    if await get_group(session, name) is not None:
        raise Conflict(f"Group {name} already exists")
    users = await users_by_name(session, members)
    group = Group(name=name, properties={}, users=users)
    session.add(group)
    return group


def add_members(group: Group, users: Iterable[User]) -> None:
    have = {u.id for u in group.users}
    for u in users:
        if u.id not in have:
            group.users.append(u)
            have.add(u.id)


def remove_members(group: Group, users: Iterable[User]) -> None:
    drop = {u.id for u in users}
    group.users = [u for u in group.users if u.id not in drop]


async def _visible(session: AsyncSession, caller: Identity, names: tuple[str, ...], name: str) -> Group:
    access.require(caller, names)
    group = await get_group(session, name)
    if group is None:
        raise NotFound(HIDDEN)
    access.require(caller, names, group=group.name)
    return group


async def list_groups(
    ctx: ServiceContext, caller: Identity, *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    access.require(caller, ("list:groups",))
    filters = caller.scopes["list:groups"]
    q = select(Group).options(selectinload(Group.users))
    count_q = select(func.count(Group.id))
    if sc.ALL not in filters:
        names = {f[6:] for f in filters if f.startswith("group=")}
        q = q.where(Group.name.in_(names))
        count_q = count_q.where(Group.name.in_(names))
    q = q.order_by(Group.id).offset(offset).limit(limit)
    async with ctx.storage.session() as session:
        groups = list((await session.execute(q)).scalars())
        total = int((await session.execute(count_q)).scalar_one())
        with_users = sc.has_any(caller.scopes, ("read:groups",))
        return [views.group_model(g, with_users=with_users) for g in groups], total


async def add_groups(
    ctx: ServiceContext,
    caller: Identity | None,
    names: list[str],
    members: list[str] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """Create groups (``caller`` ``None``: the hub itself, e.g. the admin page already checked)."""
    if caller is not None:
        access.require(caller, ("admin:groups",))
    async with ctx.storage.session() as session:
        created = [await new_group(session, n, members) for n in dict.fromkeys(names)]
        await session.commit()
        return [views.group_model(g) for g in created]


async def group_model(ctx: ServiceContext, caller: Identity, name: str) -> dict[str, Any]:
    async with ctx.storage.session() as session:
        return views.group_model(await _visible(session, caller, READ_GROUP, name))


async def delete_group(ctx: ServiceContext, caller: Identity | None, name: str) -> None:
    async with ctx.storage.session() as session:
        group = await (
            _visible(session, caller, ("delete:groups",), name) if caller else require_group(session, name)
        )
        await session.delete(group)
        await session.commit()


async def change_members(
    ctx: ServiceContext, caller: Identity | None, name: str, users: list[str], *, add: bool
) -> dict[str, Any]:
    async def change() -> dict[str, Any]:
        async with ctx.storage.session() as session:
            group = await (
                _visible(session, caller, ("groups",), name) if caller else require_group(session, name)
            )
            members = await users_by_name(session, users)
            (add_members if add else remove_members)(group, members)
            await session.commit()
            return views.group_model(group)

    return await retry_unique(change)  # adding a member twice at once is still one membership


async def set_properties(
    ctx: ServiceContext, caller: Identity, name: str, properties: dict[str, Any]
) -> dict[str, Any]:
    async with ctx.storage.session() as session:
        group = await _visible(session, caller, ("groups",), name)
        group.properties = properties
        await session.commit()
        return views.group_model(group)
