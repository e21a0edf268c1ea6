"""Reading servers with their owners, and the :class:`~hubkit.interfaces.ServerSpec` a backend sees.

Plain column queries (no relationship loading): adoption and polling read every live server at once, and a
restarted hub must get through thousands of them quickly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from ..errors import Conflict
from ..interfaces import JSONDict, ServerSpec, UserInfo
from ..storage.orm import Group, Server, ServerStatus, User, user_group
from .context import Spawning
from .parts import SpawnPolicy


@dataclass(frozen=True)
class Owner:
    id: int
    name: str
    admin: bool
    groups: tuple[str, ...] = ()


def spec_for(
    sp: Spawning, srv: Server, owner: Owner, *, token: str = "", env: dict[str, str] | None = None
) -> ServerSpec:
    return ServerSpec(
        user=UserInfo(name=owner.name, admin=owner.admin, groups=owner.groups, id=owner.id),
        server_name=srv.name,
        server_id=srv.id,
        url_prefix=sp.parts.urls.server(owner.name, srv.name),
        hub_api_url=sp.parts.urls.hub_api_url,
        env=env or {},
        cmd=tuple(sp.policy.config.cmd),
        args=tuple(sp.policy.config.args),
        user_options=dict(srv.user_options or {}),
        api_token=token,
        hub_id=sp.policy.hub_id,
    )


async def group_names(s: AsyncSession, user_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    ids = list(set(user_ids))
    out: dict[int, list[str]] = {}
    for i in range(0, len(ids), 500):
        rows = await s.execute(
            select(user_group.c.user_id, Group.name)
            .join(Group, user_group.c.group_id == Group.id)
            .where(user_group.c.user_id.in_(ids[i : i + 500]))
        )
        for uid, name in rows:
            out.setdefault(uid, []).append(name)
    return {uid: tuple(sorted(names)) for uid, names in out.items()}


def servers_with_owners() -> Select[Server, int, str, bool]:  # type: ignore[type-arg,unused-ignore]
    """Server rows with their owner's id/name/admin in one query (no relationship loading)."""
    return (
        select(Server, User.id, User.name, User.admin)
        .join(User, User.id == Server.user_id)
        .options(noload(Server.user))
    )


async def load(s: AsyncSession, server_id: int) -> tuple[Server, Owner]:
    row = (await s.execute(servers_with_owners().where(Server.id == server_id))).one_or_none()
    if row is None:
        raise LookupError(server_id)
    srv, uid, name, admin = row
    groups = (await group_names(s, [uid])).get(uid, ())
    return srv, Owner(uid, name, admin, groups)


async def load_spec(sp: Spawning, server_id: int) -> tuple[ServerSpec, Server]:
    """The spec of a stored server (for poll/stop: no fresh credentials) and its row."""
    async with sp.storage.session() as s:
        srv, owner = await load(s, server_id)
        return spec_for(sp, srv, owner), srv


LiveRow = tuple[ServerSpec, Server]


async def live_servers(sp: Spawning, statuses: tuple[ServerStatus, ...]) -> list[LiveRow]:
    """Every server in ``statuses`` with its spec, in two queries however many there are."""
    async with sp.storage.session() as s:
        rows = (await s.execute(servers_with_owners().where(Server.status.in_(statuses)))).all()
        groups = await group_names(s, [r[1] for r in rows])
    return [
        (spec_for(sp, srv, Owner(uid, name, admin, groups.get(uid, ()))), srv)
        for srv, uid, name, admin in rows
    ]


async def stored_state(sp: Spawning, server_id: int) -> JSONDict:
    async with sp.storage.session() as s:
        state = (await s.execute(select(Server.state).where(Server.id == server_id))).scalar_one_or_none()
    return dict(state or {})


async def server_row(s: AsyncSession, user_id: int, name: str) -> Server | None:
    return (
        await s.execute(
            select(Server).where(Server.user_id == user_id, Server.name == name).options(noload(Server.user))
        )
    ).scalar_one_or_none()


async def create_server(
    s: AsyncSession, policy: SpawnPolicy, user_id: int, user: str, name: str, **values: object
) -> Server:
    """A new stopped server row, within the hub's named-server rules. Flushed, not committed."""
    policy.check_server_name(name)
    if name:
        n = (
            await s.execute(select(func.count()).where(Server.user_id == user_id, Server.name != ""))
        ).scalar_one()
        policy.check_named_count(user, n)
    srv = Server(user_id=user_id, name=name, status=ServerStatus.STOPPED, state={}, **values)
    s.add(srv)
    try:
        await s.flush()
    except IntegrityError:
        raise Conflict(f"server {user}/{name} is being created by another request") from None
    return srv
