"""Finding change notices (:mod:`.changes`) in what the hub's database sessions write, so no service can forget one.

Two doors lead into the watched tables, and both are watched on :class:`WatchedSession`:

* the unit of work: after each flush, rows deleted, rows whose watched columns or memberships changed, and new
  groups and services;
* statements run through ``session.execute``: ``UPDATE``/``DELETE`` on a watched table (an ``UPDATE`` only when
  it sets a watched column, other than to itself) and ``INSERT`` into ``user_group`` (a membership) or
  ``services`` (a new service's access policy may grant logins to it). Their keys come from the ``WHERE`` clause when
  one of its ``AND``-ed terms pins a key column (``id = 3``, ``user_id IN (...)``); otherwise the notice is for
  every row of the kind. A term narrows what the statement touches, so any one of them names a superset.

Staged notices are published after the session commits and dropped when it rolls back. Writes that bypass a
session (``engine.begin()`` in migrations, ``hubkit db restore``) are not seen: they run without a hub serving.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnElement

from .changes import Change, ChangeFeed, Kind

FEED_KEY = "hubkit.changes"  # the session's feed, in ``Session.info`` (set by Storage's sessionmaker)
_STAGED = "hubkit.changes.staged"

# table -> (kind, columns whose change matters to a copy; None: every insert/delete matters)
WATCHED: dict[str, tuple[Kind, frozenset[str] | None]] = {
    "api_tokens": (
        "token",
        frozenset(
            {"hashed", "user_id", "service_id", "server_id", "kind", "scopes", "expires_at", "session_id"}
            | {"oauth_client"}
        ),
    ),
    "users": ("user", frozenset({"name", "admin", "cookie_id"})),
    "services": ("service", frozenset({"name", "admin", "scopes", "access"})),
    "groups": ("group", frozenset({"name"})),
    "user_group": ("group", None),
    "servers": ("server", frozenset({"name", "user_id"})),
}
# table -> key columns a WHERE term may pin, and the kind of notice each gives
KEY_COLUMNS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "api_tokens": (
        ("id", "token"),
        ("user_id", "user"),
        ("server_id", "server"),
        ("service_id", "service"),
        ("oauth_client", "client"),
    ),
    "users": (("id", "user"), ("name", "user")),
    "services": (("id", "service"),),
    "groups": (("id", "group"),),
    "user_group": (("group_id", "group"),),
    "servers": (("id", "server"), ("user_id", "user")),
}
# relationship collections whose change is a membership change
MEMBERSHIP = {("users", "groups"), ("groups", "users")}


class WatchedSession(Session):
    """The hub's sessions: a plain SQLAlchemy ``Session`` with the change capture below attached."""


def stage(session: Session, changes: Iterable[Change]) -> None:
    changes = set(changes)
    feed: ChangeFeed | None = session.info.get(FEED_KEY)
    if not changes or feed is None:
        return
    session.info.setdefault(_STAGED, set()).update(changes)
    feed.stage(session, changes)


def _table_of(row: Any) -> str | None:
    table = getattr(type(row), "__table__", None)
    return getattr(table, "name", None)


def _row_changes(row: Any, deleted: bool) -> set[Change]:
    name = _table_of(row)
    if name not in WATCHED:
        return set()
    kind, columns = WATCHED[name]
    state = inspect(row)
    pk = state.identity[0] if state.identity else None
    if deleted:
        return {Change(kind, pk)}
    watched = [
        attr
        for attr in state.attrs
        if (columns is not None and attr.key in columns) or (name, attr.key) in MEMBERSHIP
    ]
    return {Change(kind, pk)} if any(attr.history.has_changes() for attr in watched) else set()


@event.listens_for(WatchedSession, "after_flush")
def _after_flush(session: Session, _ctx: Any) -> None:
    found: set[Change] = set()
    for row in session.deleted:
        found |= _row_changes(row, deleted=True)
    for row in session.dirty:
        found |= _row_changes(row, deleted=False)
    for row in session.new:
        table = _table_of(row)
        if table == "groups":  # a new group created with members
            found |= _row_changes(row, deleted=False)
        elif table == "services":  # a new service's access policy may grant logins to it
            found.add(Change("service", None))
    stage(session, found)


def _pinned(
    where: ColumnElement[Any] | None, table: str, params: Mapping[str, Any] | None = None
) -> list[tuple[str, list[Any]]]:
    """(column, values) for each AND-ed ``column = value`` / ``column IN (values)`` term on ``table``; a bare
    ``bindparam("x")`` takes its value from the execution's ``params``."""
    if where is None:
        return []
    terms: list[Any] = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    out: list[tuple[str, list[Any]]] = []
    for term in terms:
        if not isinstance(term, BinaryExpression) or term.operator not in (operators.eq, operators.in_op):
            continue
        left, right = term.left, term.right
        if getattr(getattr(left, "table", None), "name", None) != table or not isinstance(
            right, BindParameter
        ):
            continue
        if right.callable is not None:
            continue
        value = right.value
        if value is None and right.required:  # bindparam("x"): given at execution
            if params is None or right.key not in params:
                continue
            value = params[right.key]
        values = (
            list(value) if term.operator is operators.in_op and isinstance(value, list | tuple) else [value]
        )
        if all(isinstance(v, int | str) for v in values):
            out.append((str(left.name), values))
    return out


def _column_name(key: Any) -> str:
    return str(getattr(key, "key", None) or getattr(key, "name", None) or key)


def _itself(key: Any, value: Any, table: str) -> bool:
    """``SET name = name``: a write that changes nothing (``races.claim_user`` takes a row lock that way)."""
    return (
        isinstance(value, ColumnElement)
        and getattr(value, "name", None) == _column_name(key)
        and getattr(getattr(value, "table", None), "name", None) == table
    )


def statement_changes(statement: Any, *, is_insert: bool, is_update: bool, params: Any = None) -> set[Change]:
    """The notices one DML statement on a watched table gives (empty for unwatched tables and columns)."""
    name = getattr(getattr(statement, "table", None), "name", None)
    if name not in WATCHED:
        return set()
    kind, columns = WATCHED[name]
    if is_insert:
        # memberships matter; a new service may grant access:services through its policy
        return {Change(kind)} if columns is None or name == "services" else set()
    if is_update and columns is not None:
        values = getattr(statement, "_values", None)
        if values is not None:  # None: values given per execution, assume they matter
            keys = {_column_name(k) for k, v in values.items() if not _itself(k, v, name)}
            if not keys & columns:
                return set()
    single = params if isinstance(params, Mapping) else None  # executemany: no single value to pin
    pinned = dict(_pinned(getattr(statement, "whereclause", None), name, single))
    for column, key_kind in KEY_COLUMNS[name]:
        if column in pinned:
            return {Change(key_kind, v) for v in pinned[column]}
    return {Change(kind)}


@event.listens_for(WatchedSession, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    stage(
        state.session,
        statement_changes(
            state.statement, is_insert=state.is_insert, is_update=state.is_update, params=state.parameters
        ),
    )


@event.listens_for(WatchedSession, "after_commit")
def _after_commit(session: Session) -> None:
    staged: set[Change] | None = session.info.pop(_STAGED, None)
    feed: ChangeFeed | None = session.info.get(FEED_KEY)
    if staged and feed is not None:
        feed.publish(staged)


@event.listens_for(WatchedSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_STAGED, None)
