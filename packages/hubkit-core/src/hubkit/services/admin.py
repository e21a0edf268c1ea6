"""The admin page's view of the hub: users searched, sorted and paginated in SQL (fast with 10,000+ users), with
their servers and groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..auth import scopes as sc
from ..auth.identity import Identity
from ..errors import Forbidden
from ..storage.orm import Group, User
from . import views
from .context import ServiceContext
from .users import SORTS, name_like

ADMIN_SORTS = ("name", "last_activity", "created", "id")


def require_admin_ui(caller: Identity) -> None:
    if not sc.has_any(caller.scopes, ("admin-ui",)):
        raise Forbidden("The admin page needs admin rights.")


# The scope each admin page action needs, as the REST API would demand it (checked per target user or group).
ACTION_SCOPES = {
    "add_users": "admin:users",
    "add_group": "admin:groups",
    "delete_group": "delete:groups",
    "delete_user": "delete:users",
    "start": "servers",
    "stop": "servers",
    "rename": "admin:users",
    "set_admin": "admin:users",
    "unset_admin": "admin:users",
    "revoke_tokens": "admin:users",
    "add_member": "groups",
    "remove_member": "groups",
}


def action_allowed(caller: Identity, action: str, form: dict[str, str]) -> bool:
    """Whether the caller may take an admin page action (its form fields name the target): ``admin-ui`` opens
    the page, each action needs what the API would demand."""
    scope = ACTION_SCOPES.get(action)
    if scope is None:
        return True  # unknown actions are answered as such
    grants_admin = action in ("set_admin", "unset_admin") or (
        action == "add_users" and form.get("admin") == "on"
    )
    if grants_admin and not caller.admin:
        return False
    if action in ("add_group", "delete_group", "add_member", "remove_member"):
        return sc.allows(caller.scopes, scope, group=form.get("group", ""))
    if action == "add_users":
        return sc.has_any(caller.scopes, (scope,)) and sc.ALL in caller.scopes.get(scope, set())
    return sc.allows(caller.scopes, scope, user=form.get("user", ""), server=form.get("server") or None)


@dataclass(frozen=True)
class AdminListing:
    total: int
    users: list[dict[str, Any]]
    groups: list[dict[str, Any]]


async def admin_listing(
    ctx: ServiceContext, *, q: str, sort: str, descending: bool, offset: int, limit: int
) -> AdminListing:
    """Users searched, sorted and paginated in SQL (fast with 10,000+ users), with servers and groups."""
    cond = name_like(q) if q else None
    col = SORTS[sort]
    stmt = select(User).options(selectinload(User.servers), selectinload(User.groups))
    count = select(func.count(User.id))
    if cond is not None:
        stmt, count = stmt.where(cond), count.where(cond)
    stmt = stmt.order_by(col.desc() if descending else col.asc(), User.id).offset(offset).limit(limit)
    async with ctx.storage.session() as session:
        total = int((await session.execute(count)).scalar_one())
        users = list((await session.execute(stmt)).scalars())
        groups = list(
            (
                await session.execute(
                    select(Group).options(selectinload(Group.users)).order_by(Group.name).limit(500)
                )
            ).scalars()
        )
        rows: list[dict[str, Any]] = []
        for u in users:
            servers = [
                {
                    "name": s.name,
                    "label": s.name or "default",
                    "status": str(s.status),
                    "url": ctx.urls.server_url(u.name, s.name),
                }
                for s in sorted(u.servers, key=lambda s: s.name)
            ]
            default = next((s for s in u.servers if s.name == ""), None)
            rows.append(
                {
                    "name": u.name,
                    "admin": u.admin,
                    "groups": sorted(g.name for g in u.groups),
                    "last_activity": views.iso(u.last_activity),
                    "servers": servers,
                    "default_status": str(default.status) if default is not None else "stopped",
                }
            )
        group_rows = [{"name": g.name, "members": len(g.users)} for g in groups]
    return AdminListing(total, rows, group_rows)
