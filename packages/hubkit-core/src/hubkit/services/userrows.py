"""Users as plain rows for the read endpoints: one statement per read, no ORM objects.

A user, its group names (one aggregated column) and its servers (an outer join: one row per server) come back
together, so ``GET /users/{name}``, ``GET /user`` and a page of ``GET /users`` are one statement each,
through the hot-path reader (:mod:`hubkit.storage.reads`). Building ORM objects and eager-loading their
relationships was most of those requests' CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select

from ..storage.access import Storage
from ..storage.orm import Server, ServerStatus, User, group_names_of, table_of
from ..storage.reads import Query, split_joined


@dataclass
class GroupRef:
    name: str


@dataclass
class ServerRow:
    """Duck-types the attributes of :class:`Server` that :func:`hubkit.services.views.server_model` reads."""

    id: int
    name: str
    display_name: str
    status: ServerStatus
    last_activity: datetime | None
    started: datetime | None
    user_options: dict[str, Any] | None
    activity: dict[str, Any] | None
    state: dict[str, Any] | None


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
    servers: list[ServerRow] = field(default_factory=list)


U = table_of(User)
S = table_of(Server)
USER_COLUMNS = (U.c.id, U.c.name, U.c.admin, U.c.created, U.c.last_activity, U.c.user_info)
SERVER_COLUMNS = (
    S.c.id, S.c.name, S.c.display_name, S.c.status, S.c.last_activity, S.c.started, S.c.user_options,
    S.c.activity, S.c.state,
)  # fmt: skip
_NU, _NS = len(USER_COLUMNS), len(SERVER_COLUMNS)


def _with_servers(*extra: ColumnElement[Any]) -> Select[Any]:
    """Users with their groups and servers: the columns every read here returns, then ``extra``."""
    return select(*USER_COLUMNS, group_names_of(U.c.id).label("groups"), *SERVER_COLUMNS, *extra).select_from(
        U.outerjoin(S, S.c.user_id == U.c.id)
    )


BY_NAME = Query(_with_servers().where(U.c.name == bindparam("name")).order_by(S.c.id))
BY_ID = Query(_with_servers().where(U.c.id == bindparam("user_id")).order_by(S.c.id))


def _rows(rows: Sequence[Sequence[Any]]) -> list[UserRow]:
    """Fold the joined rows (one per server, a user's rows adjacent) into users, in order."""
    out: list[UserRow] = []
    for r in rows:
        if not out or out[-1].id != r[0]:
            user = UserRow(*r[:_NU])
            user.groups = [GroupRef(g) for g in split_joined(r[_NU])]
            out.append(user)
        server = r[_NU + 1 : _NU + 1 + _NS]
        if server[0] is not None:
            out[-1].servers.append(ServerRow(*server))
    return out


async def load_one(storage: Storage, name: str) -> UserRow | None:
    users = _rows(await storage.reads.all(BY_NAME, name=name))
    return users[0] if users else None


async def load_by_id(storage: Storage, user_id: int) -> UserRow | None:
    users = _rows(await storage.reads.all(BY_ID, user_id=user_id))
    return users[0] if users else None


def _page(
    where: ColumnElement[bool] | None, order: tuple[ColumnElement[Any], ...], offset: Any, limit: Any
) -> Any:
    page = select(U.c.id.label("uid"), func.count().over().label("total")).select_from(U)
    if where is not None:
        page = page.where(where)
    sub = page.order_by(*order).offset(offset).limit(limit).subquery()
    return (
        select(*USER_COLUMNS, group_names_of(U.c.id).label("groups"), *SERVER_COLUMNS, sub.c.total)
        .select_from(sub.join(U, U.c.id == sub.c.uid).outerjoin(S, S.c.user_id == U.c.id))
        .order_by(*order, S.c.id)
    )


def _unfiltered(sort: str, desc: bool) -> Query:
    """Every user, sorted: the admin's page (offset and limit are parameters)."""
    col = U.c[sort]
    order = (col.desc(), U.c.id.desc()) if desc else (col.asc(), U.c.id.asc())
    return Query(_page(None, order, bindparam("offset", type_=Integer), bindparam("limit", type_=Integer)))


SORTABLE = ("id", "name", "last_activity")
# built once per sort order, at import (no state kept at run time)
UNFILTERED: Mapping[tuple[str, bool], Query] = MappingProxyType(
    {(sort, desc): _unfiltered(sort, desc) for sort in SORTABLE for desc in (False, True)}
)


async def load_page(
    storage: Storage,
    where: ColumnElement[bool] | None,
    *,
    sort: str,
    desc: bool,
    offset: int,
    limit: int,
) -> tuple[list[UserRow], int | None]:
    """A page of users sorted by the ``users`` column ``sort`` (then id), and the number of users matching
    ``where`` (``None`` when the page is empty: then nobody counted them). One statement: the page with its
    count as a window function, joined to the users' groups and servers."""
    if where is None:
        rows = await storage.reads.all(UNFILTERED[(sort, desc)], offset=offset, limit=limit)
    else:
        col = U.c[sort]
        order = (col.desc(), U.c.id.desc()) if desc else (col.asc(), U.c.id.asc())
        rows = await storage.reads.execute(_page(where, order, offset, limit))
    return _rows(rows), (int(rows[0][-1]) if rows else None)
