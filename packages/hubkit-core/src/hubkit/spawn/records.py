"""Reading servers with their owners, and the :class:`~hubkit.interfaces.ServerSpec` a backend sees.

Plain column queries (no relationship loading): adoption and polling read every live server at once, and a
restarted hub must get through thousands of them quickly. A spawn's own reads (:func:`load`) are one statement
each: the server, its owner and the owner's groups together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from ..errors import Conflict
from ..interfaces import JSONDict, ServerSpec, UserInfo
from ..storage.orm import Group, Server, ServerStatus, User, group_names_of, table_of, user_group
from ..storage.reads import Query, split_joined
from .context import Spawning
from .parts import SpawnPolicy
from .statements import inserted_id

S = table_of(Server)
U = table_of(User)


@dataclass(frozen=True)
class Owner:
    id: int
    name: str
    admin: bool
    groups: tuple[str, ...] = ()
    spawn_failures: int = 0


@dataclass(frozen=True)
class StoredServer:
    """A server row as a spawn and a stop read it."""

    id: int
    name: str
    status: ServerStatus
    state: dict[str, Any] | None
    url: str | None
    user_options: dict[str, Any] | None
    created: datetime | None = None


_COLUMNS = (
    S.c.id, S.c.name, S.c.status, S.c.state, S.c.url, S.c.user_options, S.c.created,
    U.c.id, U.c.name, U.c.admin, group_names_of(U.c.id), U.c.spawn_failures,
)  # fmt: skip
_LOAD = (
    select(*_COLUMNS).select_from(S.join(U, U.c.id == S.c.user_id)).where(S.c.id == bindparam("server_id"))
)
LOAD = Query(_LOAD)


def _loaded(row: Any) -> tuple[StoredServer, Owner]:
    uid, name, admin, groups, failures = row[7:]
    return StoredServer(*row[:7]), Owner(uid, name, admin, split_joined(groups), failures or 0)


def spec_for(
    sp: Spawning,
    srv: Server | StoredServer,
    owner: Owner,
    *,
    token: str = "",
    env: dict[str, str] | None = None,
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
    """Server rows with their owner's id/name/admin in one query (the owner relationship is not loaded)."""
    return (
        select(Server, User.id, User.name, User.admin)
        .join(User, User.id == Server.user_id)
        .options(raiseload(Server.user))
    )


async def load(s: AsyncSession, server_id: int) -> tuple[StoredServer, Owner]:
    """A server with its owner, in the caller's transaction (one statement)."""
    row = (await s.execute(_LOAD, {"server_id": server_id})).one_or_none()
    if row is None:
        raise LookupError(server_id)
    return _loaded(row)


async def load_spec(sp: Spawning, server_id: int) -> tuple[ServerSpec, StoredServer]:
    """The spec of a stored server (for poll/stop: no fresh credentials) and its row (one hot-path read)."""
    row = await sp.storage.reads.one(LOAD, server_id=server_id)
    if row is None:
        raise LookupError(server_id)
    srv, owner = _loaded(row)
    return spec_for(sp, srv, owner), srv


LiveRow = tuple[ServerSpec, Server]


async def live_servers(
    sp: Spawning, statuses: tuple[ServerStatus, ...], *, ids: Iterable[int] | None = None
) -> list[LiveRow]:
    """Every server in ``statuses`` (of ``ids`` if given) with its spec, in two queries however many there are."""
    query = servers_with_owners().where(Server.status.in_(statuses))
    if ids is not None:
        query = query.where(Server.id.in_(list(ids)))
    async with sp.storage.session() as s:
        rows = (await s.execute(query)).all()
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
            select(Server)
            .where(Server.user_id == user_id, Server.name == name)
            .options(raiseload(Server.user))
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


async def insert_server(s: AsyncSession, policy: SpawnPolicy, user_id: int, user: str, name: str) -> int:
    """A new stopped server row within the hub's named-server rules, in one ``INSERT``; its id. Not committed."""
    policy.check_server_name(name)
    if name:
        n = (await s.execute(select(func.count()).where(S.c.user_id == user_id, S.c.name != ""))).scalar_one()
        policy.check_named_count(user, n)
    try:
        result = await s.execute(
            insert(S).values(user_id=user_id, name=name, status=ServerStatus.STOPPED, state={})
        )
    except IntegrityError:
        raise Conflict(f"server {user}/{name} is being created by another request") from None
    return inserted_id(result)
