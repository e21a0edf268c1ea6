"""The spawn engine's SQL, built once: every statement a start and a stop run, with bind parameters for what
changes per call.

Building a statement per call (``update(...).where(...).values(...)``) and deriving its cache key cost more
hub CPU in a spawn wave than executing it; a statement built once has its compiled form cached by SQLAlchemy
and only its parameters change. Parameter names start with ``p_`` where a column of the same name is set.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..storage.orm import APIToken, OAuthClient, Server, ServerStatus, Spawn, SpawnEvent, User, table_of

S = table_of(Server)
U = table_of(User)
SPAWNS = table_of(Spawn)
EVENTS = table_of(SpawnEvent)
TOKENS = table_of(APIToken)
CLIENTS = table_of(OAuthClient)

# ---- request: the user and that server of theirs (id None when it does not exist yet), then queue it
USER_AND_SERVER = (
    select(U.c.id, S.c.id, S.c.status)
    .select_from(U.outerjoin(S, and_(S.c.user_id == U.c.id, S.c.name == bindparam("server"))))
    .where(U.c.name == bindparam("user"))
)
NEW_SPAWN = insert(SPAWNS)  # params: server_id
QUEUE = (
    update(S)
    .where(S.c.id == bindparam("server_id"), S.c.status == ServerStatus.STOPPED)
    .values(
        status=ServerStatus.QUEUED,
        current_spawn_id=bindparam("p_spawn"),
        user_options=bindparam("p_options"),
        backend=bindparam("p_backend"),
        lease_owner=bindparam("p_owner"),  # the process that drives this start (spawn/ownership.py)
    )
)

# ---- phases: each only while this process still owns the row (no update: another replica took it over)
OWNED = and_(S.c.id == bindparam("server_id"), S.c.lease_owner == bindparam("p_owner"))
STARTING = update(S).where(OWNED).values(status=ServerStatus.STARTING, state={}, url=None)
STATE = update(S).where(OWNED).values(state=bindparam("p_state"))
ENDPOINT = update(S).where(OWNED).values(state=bindparam("p_state"), url=bindparam("p_url"))
RUNNING = (
    update(S)
    .where(OWNED)
    .values(status=ServerStatus.RUNNING, started=bindparam("p_now"), last_activity=bindparam("p_now"))
)
RESET_FAILURES = update(U).where(U.c.id == bindparam("user_id")).values(spawn_failures=0)
SPAWN_READY = (
    update(SPAWNS)
    .where(SPAWNS.c.id == bindparam("spawn_id"))
    .values(outcome="ready", finished=bindparam("p_now"), message="")
)
NEW_EVENT = insert(EVENTS)  # params: the columns (progress.values_of)

# ---- credentials
DELETE_SERVER_TOKEN = delete(TOKENS).where(
    TOKENS.c.server_id == bindparam("server_id"), TOKENS.c.kind == "server"
)
NEW_TOKEN = insert(TOKENS)  # params: auth.tokens.token_values
_CLIENT_COLUMNS = (
    "secret_hash",
    "redirect_uri",
    "description",
    "server_id",
    "access_scopes",
    "allowed_scopes",
)


def _upsert(stmt: sqlite.Insert | postgresql.Insert) -> sqlite.Insert | postgresql.Insert:
    return stmt.on_conflict_do_update(
        index_elements=[CLIENTS.c.identifier], set_={c: stmt.excluded[c] for c in _CLIENT_COLUMNS}
    )


# the server's OAuth client, created or brought up to date in one statement (dialect-specific syntax)
UPSERT_CLIENT = {"sqlite": _upsert(sqlite.insert(CLIENTS)), "postgresql": _upsert(postgresql.insert(CLIENTS))}


def inserted_id(result: Any) -> int:
    """The primary key of the row a single-row ``INSERT`` made."""
    return int(result.inserted_primary_key[0])
