"""``/hub/admin``: users searched, sorted and paginated in SQL (fast with 10,000+ users), plus admin actions
as plain form posts: add/delete/rename users, admin flag, start/stop servers, groups, revoke tokens."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...api.models import iso
from ...auth import scopes as sc
from ...auth.identity import Identity
from ...auth.sessions import hub_prefix
from ...errors import Conflict, HubkitError
from ...services import users as svc
from ...storage.orm import Group, ServerStatus, User
from ..render import error_page, redirect, render
from .common import PageError, checked_form, hub_of, page, require_login, safe_next

SORTS = {"name": User.name, "last_activity": User.last_activity, "created": User.created, "id": User.id}
PER_PAGE = (25, 50, 100, 200)


async def _admin(request: Request) -> Identity:
    ident = await require_login(request)
    if not sc.has_any(ident.scopes, ("admin-ui",)):
        raise PageError(error_page(request, 403, "The admin page needs admin rights."))
    return ident


def _int(raw: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(raw or default)))
    except ValueError:
        return default


@page
async def admin(request: Request) -> Response:
    hub = hub_of(request)
    await _admin(request)
    qp = request.query_params
    q = qp.get("q", "")[:255]
    sort = qp.get("sort", "name") if qp.get("sort", "name") in SORTS else "name"
    order = "desc" if qp.get("order") == "desc" else "asc"
    per_page = _int(qp.get("per_page"), 50, 1, 200)
    if per_page not in PER_PAGE:
        per_page = 50
    page_no = _int(qp.get("page"), 1, 1, 10_000_000)
    cond = None
    if q:
        esc = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        cond = func.lower(User.name).like(f"%{esc.lower()}%", escape="\\")
    col = SORTS[sort]
    stmt = select(User).options(selectinload(User.servers), selectinload(User.groups))
    count = select(func.count(User.id))
    if cond is not None:
        stmt, count = stmt.where(cond), count.where(cond)
    stmt = (
        stmt.order_by(col.desc() if order == "desc" else col.asc(), User.id)
        .offset((page_no - 1) * per_page)
        .limit(per_page)
    )
    async with hub.db() as session:
        total = int((await session.execute(count)).scalar_one())
        users = list((await session.execute(stmt)).scalars())
        groups = list((await session.execute(select(Group).order_by(Group.name).limit(500))).scalars())
        rows: list[dict[str, Any]] = []
        for u in users:
            servers = [
                {
                    "name": s.name,
                    "label": s.name or "default",
                    "status": str(s.status),
                    "url": hub.server_url(u.name, s.name),
                }
                for s in sorted(u.servers, key=lambda s: s.name)
            ]
            default = next((s for s in u.servers if s.name == ""), None)
            rows.append(
                {
                    "name": u.name,
                    "admin": u.admin,
                    "groups": sorted(g.name for g in u.groups),
                    "last_activity": iso(u.last_activity),
                    "servers": servers,
                    "default_status": str(default.status) if default is not None else "stopped",
                }
            )
        group_rows = [{"name": g.name, "members": len(g.users)} for g in groups]
    pages = max(1, math.ceil(total / per_page))
    state = {"q": q, "sort": sort, "order": order, "per_page": per_page}
    here = f"{hub_prefix(hub)}admin?{urlencode({**state, 'page': page_no})}"

    def link(**kw: Any) -> str:
        return f"{hub_prefix(hub)}admin?{urlencode({**state, 'page': page_no, **kw})}"

    return render(
        request,
        "admin.html",
        {
            "users": rows,
            "total": total,
            "page": page_no,
            "pages": pages,
            "state": state,
            "groups": group_rows,
            "here": here,
            "link": link,
            "per_page_choices": PER_PAGE,
            "message": qp.get("message", "")[:300],
        },
    )


# The scope each admin action needs, as the REST API would demand it (checked per target user or group).
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


def _allowed(ident: Identity, action: str, form: dict[str, str]) -> bool:
    scope = ACTION_SCOPES.get(action)
    if scope is None:
        return True  # unknown actions are answered as such below
    grants_admin = action in ("set_admin", "unset_admin") or (action == "add_users" and form.get("admin") == "on")
    if grants_admin and not ident.admin:
        return False
    if action in ("add_group", "delete_group", "add_member", "remove_member"):
        return sc.allows(ident.scopes, scope, group=form.get("group", ""))
    if action == "add_users":
        return sc.has_any(ident.scopes, (scope,)) and sc.ALL in ident.scopes.get(scope, set())
    return sc.allows(ident.scopes, scope, user=form.get("user", ""), server=form.get("server") or None)


async def _do(hub: Any, ident: Identity, form: dict[str, str]) -> str:
    action = form.get("action", "")
    name = form.get("user", "")
    if not _allowed(ident, action, form):
        return f"You are not allowed to {action.replace('_', ' ')} here."
    if action == "add_users":
        names = [n.strip() for n in form.get("names", "").replace(",", "\n").splitlines() if n.strip()]
        if not names:
            return "No user names given."
        for n in names:
            svc.check_name(n)
        async with hub.db() as session:
            created = await svc.create_users(hub, session, names, admin=form.get("admin") == "on")
        return f"Added {len(created)} user(s)."
    if action in ("add_group", "delete_group"):
        gname = form.get("group", "").strip()
        async with hub.db() as session:
            if action == "add_group":
                await svc.create_group(session, gname)
            else:
                await session.delete(await svc.require_group(session, gname))
            await session.commit()
        return f"Group {gname} {'created' if action == 'add_group' else 'deleted'}."
    svc.check_name(name)
    if action == "delete_user":
        if name == ident.name:
            return "You cannot delete yourself."
        await svc.delete_user(hub, name, reason=f"deleted by admin {ident.name}")
        return f"Deleted {name}."
    if action == "start":
        await hub.spawns.request_start(name, form.get("server", ""), None)
        return f"Starting {name}'s server."
    if action == "stop":
        await hub.spawns.stop(name, form.get("server", ""), reason=f"stopped by admin {ident.name}")
        return f"Stopping {name}'s server."
    async with hub.db() as session:
        user = await svc.require_user(session, name)
        msg = ""
        if action == "rename":
            new = await svc.normalize(hub, form.get("new_name", ""))
            await svc.rename_user(session, user, new)
            msg = f"Renamed {name} to {new}."
        elif action in ("set_admin", "unset_admin"):
            if name == ident.name and action == "unset_admin":
                return "You cannot remove your own admin rights."
            user.admin = action == "set_admin"
            msg = f"{name} is {'now' if user.admin else 'no longer'} an admin."
        elif action == "revoke_tokens":
            count = await svc.revoke_all_tokens(session, user)
            msg = f"Revoked {count} token(s) and all browser sessions of {name}."
        elif action in ("add_member", "remove_member"):
            group = await svc.require_group(session, form.get("group", ""))
            (svc.add_members if action == "add_member" else svc.remove_members)(group, [user])
            msg = f"{'Added' if action == 'add_member' else 'Removed'} {name} {'to' if action == 'add_member' else 'from'} {group.name}."
        else:
            return f"Unknown action {action[:32]!r}."
        await session.commit()
    return msg


@page
async def admin_action(request: Request) -> Response:
    hub = hub_of(request)
    ident = await _admin(request)
    form = await checked_form(request)
    fields = {k: str(v) for k, v in form.items()}
    back = safe_next(hub, fields.get("next")) or f"{hub_prefix(hub)}admin"
    try:
        message = await _do(hub, ident, fields)
    except (Conflict, HubkitError) as exc:
        message = f"Error: {exc}"
    sep = "&" if "?" in back else "?"
    return redirect(f"{back}{sep}{urlencode({'message': message[:300]})}", status=303)


def routes(p: str) -> list[Route]:
    return [
        Route(f"{p}admin", admin, methods=["GET"]),
        Route(f"{p}admin/action", admin_action, methods=["POST"]),
    ]


__all__ = ["ServerStatus", "routes"]
