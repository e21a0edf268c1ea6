"""Read a JupyterHub database (SQLite, opened read-only, or PostgreSQL) into plain values.

Tables are reflected rather than modelled, so columns added or missing across JupyterHub versions are read
when present. JupyterHub 3.0 or later is needed: from 3.0 tokens carry their scopes. JSON columns are text
in JupyterHub's schema; datetimes are naive UTC.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, MetaData, Table, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from ...errors import ConfigError, HubkitError

NEEDED = ("users", "groups", "user_group_map", "spawners", "api_tokens")


class SourceError(HubkitError):
    """The source is not a JupyterHub database hubkit can read."""


@dataclass(frozen=True)
class JHUser:
    name: str
    admin: bool
    created: datetime | None = None
    last_activity: datetime | None = None
    user_info: dict[str, Any] | None = None
    has_auth_state: bool = False
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class JHGroup:
    name: str
    properties: dict[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class JHServer:
    user: str
    name: str
    display_name: str = ""
    user_options: dict[str, Any] = field(default_factory=dict)
    running: bool = False


@dataclass(frozen=True)
class JHToken:
    id: int
    hashed: str
    prefix: str
    user: str | None
    service: str | None
    client_id: str | None
    note: str = ""
    scopes: tuple[str, ...] = ()
    created: datetime | None = None
    expires_at: datetime | None = None
    last_activity: datetime | None = None


@dataclass(frozen=True)
class JupyterHubData:
    revision: str
    users: tuple[JHUser, ...]
    groups: tuple[JHGroup, ...]
    servers: tuple[JHServer, ...]
    tokens: tuple[JHToken, ...]
    roles: dict[str, tuple[str, ...]]  # role name -> scopes
    services: tuple[str, ...]


def source_url(raw: str) -> URL:
    """The async URL to read ``raw`` with: SQLite read-only (relative paths from the current directory, and
    never created), PostgreSQL through asyncpg."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {raw!r} (e.g. sqlite:///jupyterhub.sqlite or postgresql://u@host/db)",
            key="--from",
        ) from None
    if url.drivername.startswith("sqlite"):
        path = url.database or ""
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ConfigError(f"name the JupyterHub SQLite file, e.g. sqlite:///jupyterhub.sqlite: {raw!r}")
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise ConfigError(f"no such file: {path}", key="--from")
        return URL.create("sqlite+aiosqlite", database=f"file:{quote(path)}?mode=ro", query={"uri": "true"})
    if url.drivername.split("+")[0] in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ConfigError(f"unsupported database {url.drivername!r}: SQLite or PostgreSQL", key="--from")


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _col(row: Any, name: str, default: Any = None) -> Any:
    return row._mapping.get(name, default)


def _read(conn: Connection) -> JupyterHubData:
    md = MetaData()
    md.reflect(conn)
    missing = [t for t in NEEDED if t not in md.tables]
    if missing:
        raise SourceError(f"not a JupyterHub database: no table {', '.join(missing)}")
    t: dict[str, Table] = dict(md.tables)
    if "scopes" not in t["api_tokens"].c:
        raise SourceError(
            "this JupyterHub database predates JupyterHub 3.0 (tokens have no scopes): run "
            "`jupyterhub upgrade-db` with JupyterHub 3 or later first"
        )
    revision = ""
    if "alembic_version" in t:
        revision = ", ".join(r[0] for r in conn.execute(select(t["alembic_version"].c.version_num)))

    roles: dict[str, tuple[str, ...]] = {}
    role_names: dict[int, str] = {}
    if "roles" in t:
        for r in conn.execute(select(t["roles"])):
            role_names[r.id] = r.name
            roles[r.name] = tuple(_json(_col(r, "scopes"), []))

    def role_map(entity: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        table = t.get(f"{entity}_role_map")
        if table is None:
            return out
        for r in conn.execute(select(table)):
            out.setdefault(r._mapping[f"{entity}_id"], []).append(role_names.get(r.role_id, "?"))
        return out

    user_roles, group_roles = role_map("user"), role_map("group")
    user_names: dict[int, str] = {}
    users = []
    for r in conn.execute(select(t["users"]).order_by(t["users"].c.id)):
        user_names[r.id] = r.name
        mine = tuple(sorted(user_roles.get(r.id, [])))
        users.append(
            JHUser(
                name=r.name,
                admin=bool(_col(r, "admin")) or "admin" in mine,
                created=_utc(_col(r, "created")),
                last_activity=_utc(_col(r, "last_activity")),
                user_info=_json(_col(r, "user_info"), None),
                has_auth_state=_col(r, "encrypted_auth_state") is not None,
                roles=mine,
            )
        )
    members: dict[int, list[str]] = {}
    for r in conn.execute(select(t["user_group_map"])):
        if r.user_id in user_names:
            members.setdefault(r.group_id, []).append(user_names[r.user_id])
    groups = tuple(
        JHGroup(
            name=r.name,
            properties=_json(_col(r, "properties"), {}) or {},
            members=tuple(sorted(members.get(r.id, []))),
            roles=tuple(sorted(group_roles.get(r.id, []))),
        )
        for r in conn.execute(select(t["groups"]).order_by(t["groups"].c.id))
    )
    servers = tuple(
        JHServer(
            user=user_names[r.user_id],
            name=r.name or "",
            display_name=_col(r, "display_name") or "",
            user_options=_json(_col(r, "user_options"), {}) or {},
            running=_col(r, "server_id") is not None,
        )
        for r in conn.execute(select(t["spawners"]).order_by(t["spawners"].c.id))
        if r.user_id in user_names
    )
    service_names: dict[int, str] = {}
    if "services" in t:
        service_names = {r.id: r.name for r in conn.execute(select(t["services"].c.id, t["services"].c.name))}
    tokens = tuple(
        JHToken(
            id=r.id,
            hashed=r.hashed,
            prefix=r.prefix or "",
            user=user_names.get(r.user_id) if r.user_id is not None else None,
            service=service_names.get(r.service_id) if r.service_id is not None else None,
            client_id=_col(r, "client_id"),
            note=_col(r, "note") or "",
            scopes=tuple(_json(_col(r, "scopes"), [])),
            created=_utc(_col(r, "created")),
            expires_at=_utc(_col(r, "expires_at")),
            last_activity=_utc(_col(r, "last_activity")),
        )
        for r in conn.execute(select(t["api_tokens"]).order_by(t["api_tokens"].c.id))
    )
    return JupyterHubData(
        revision=revision,
        users=tuple(users),
        groups=groups,
        servers=servers,
        tokens=tokens,
        roles=roles,
        services=tuple(sorted(service_names.values())),
    )


async def read_jupyterhub(raw_url: str) -> JupyterHubData:
    engine = create_async_engine(source_url(raw_url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_read)
    except SQLAlchemyError as exc:
        shown = make_url(raw_url).render_as_string(hide_password=True)
        raise SourceError(
            f"cannot read {shown}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}"
        ) from None
    finally:
        await engine.dispose()
