"""A page of users as plain rows (no ORM identity map) for the list endpoint, which may return 200 users
per request: building ORM objects was a large share of its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from ..storage.orm import Group, Server, User, user_group


@dataclass
class GroupRef:
    name: str


@dataclass
class UserRow:
    """Duck-types the attributes of :class:`User` that :func:`hubkit.services.views.user_model` reads."""

    id: int
    name: str
    admin: bool
    created: datetime
    last_activity: datetime | None
    user_info: dict[str, Any] | None
    groups: list[GroupRef] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)


COLUMNS = (User.id, User.name, User.admin, User.created, User.last_activity, User.user_info)


def page_query() -> Select[Any]:
    return select(*COLUMNS)


async def load(session: AsyncSession, query: Select[Any]) -> list[UserRow]:
    rows = [UserRow(*r) for r in (await session.execute(query)).all()]
    if not rows:
        return rows
    by_id = {r.id: r for r in rows}
    ids = list(by_id)
    groups = await session.execute(
        select(user_group.c.user_id, Group.name)
        .join(Group, Group.id == user_group.c.group_id)
        .where(user_group.c.user_id.in_(ids))
    )
    for uid, gname in groups.all():
        by_id[uid].groups.append(GroupRef(gname))
    servers = await session.execute(
        select(Server).where(Server.user_id.in_(ids)).options(noload(Server.user))
    )
    for srv in servers.scalars():
        by_id[srv.user_id].servers.append(srv)
    return rows


async def load_one(session: AsyncSession, name: str) -> UserRow | None:
    """One user by name: its row and group names in one outer-joined statement (one row per group), then its
    servers; two statements instead of three on the hottest single-user read."""
    result = await session.execute(
        select(*COLUMNS, Group.name)
        .select_from(User)
        .outerjoin(user_group, user_group.c.user_id == User.id)
        .outerjoin(Group, Group.id == user_group.c.group_id)
        .where(User.name == name)
        .order_by(Group.name)
    )
    rows = result.all()
    if not rows:
        return None
    user = UserRow(*rows[0][: len(COLUMNS)])
    user.groups = [GroupRef(r[-1]) for r in rows if r[-1] is not None]
    servers = await session.execute(
        select(Server).where(Server.user_id == user.id).options(noload(Server.user))
    )
    user.servers = list(servers.scalars())
    return user
