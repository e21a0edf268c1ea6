"""``/hub/admin``: users searched, sorted and paginated (fast with 10,000+ users), plus admin actions as plain form
posts: add/delete/rename users, admin flag, start/stop servers, groups, revoke tokens."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth.identity import Identity
from ...errors import HubkitError
from ...services import admin as listing
from ...services import groups, servers, users
from ...services.context import ServiceContext
from ...services.names import check_name
from ..context import web_of
from ..render import redirect, render
from .common import checked_form, page, page_routes, require_login, safe_next

PER_PAGE = (25, 50, 100, 200)


async def _admin(request: Request) -> tuple[ServiceContext, Identity]:
    ctx, who = await require_login(request)
    listing.require_admin_ui(who)
    return ctx, who


def _int(raw: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(raw or default)))
    except ValueError:
        return default


@page
async def admin(request: Request) -> Response:
    ctx, _ = await _admin(request)
    qp = request.query_params
    q = qp.get("q", "")[:255]
    sort = qp.get("sort", "name") if qp.get("sort", "name") in listing.ADMIN_SORTS else "name"
    order = "desc" if qp.get("order") == "desc" else "asc"
    per_page = _int(qp.get("per_page"), 50, 1, 200)
    if per_page not in PER_PAGE:
        per_page = 50
    page_no = _int(qp.get("page"), 1, 1, 10_000_000)
    found = await listing.admin_listing(
        ctx, q=q, sort=sort, descending=order == "desc", offset=(page_no - 1) * per_page, limit=per_page
    )
    state = {"q": q, "sort": sort, "order": order, "per_page": per_page}
    prefix = web_of(request).urls.hub_prefix

    def link(**kw: Any) -> str:
        return f"{prefix}admin?{urlencode({**state, 'page': page_no, **kw})}"

    return render(
        request,
        "admin.html",
        {
            "users": found.users,
            "total": found.total,
            "page": page_no,
            "pages": max(1, math.ceil(found.total / per_page)),
            "state": state,
            "groups": found.groups,
            "here": link(),
            "link": link,
            "per_page_choices": PER_PAGE,
            "message": qp.get("message", "")[:300],
        },
    )


async def _do(ctx: ServiceContext, who: Identity, form: dict[str, str]) -> str:
    """One admin form action; the message shown on the page afterwards."""
    action = form.get("action", "")
    name = form.get("user", "")
    if not listing.action_allowed(who, action, form):
        return f"You are not allowed to {action.replace('_', ' ')} here."
    if action == "add_users":
        names = [n.strip() for n in form.get("names", "").replace(",", "\n").splitlines() if n.strip()]
        if not names:
            return "No user names given."
        for n in names:
            check_name(n)
        created = await users.create_users(ctx, names, admin=form.get("admin") == "on")
        return f"Added {len(created)} user(s)."
    if action in ("add_group", "delete_group"):
        gname = form.get("group", "").strip()
        if action == "add_group":
            await groups.add_groups(ctx, None, [gname])
        else:
            await groups.delete_group(ctx, None, gname)
        return f"Group {gname} {'created' if action == 'add_group' else 'deleted'}."
    check_name(name)
    server = form.get("server", "")
    if action == "delete_user":
        if name == who.name:
            return "You cannot delete yourself."
        await users.delete_user(ctx, name, reason=f"deleted by admin {who.name}")
        return f"Deleted {name}."
    if action == "start":
        await servers.start_by_name(ctx, name, server)
        return f"Starting {name}'s server."
    if action == "stop":
        await servers.stop_by_name(ctx, name, server, reason=f"stopped by admin {who.name}")
        return f"Stopping {name}'s server."
    if action == "rename":
        new = await users.rename(ctx, name, form.get("new_name", ""))
        return f"Renamed {name} to {new}."
    if action in ("set_admin", "unset_admin"):
        admin = action == "set_admin"
        if name == who.name and not admin:
            return "You cannot remove your own admin rights."
        await users.set_admin(ctx, name, admin)
        return f"{name} is {'now' if admin else 'no longer'} an admin."
    if action == "revoke_tokens":
        count = await users.revoke_all_tokens(ctx, name)
        return f"Revoked {count} token(s) and all browser sessions of {name}."
    if action in ("add_member", "remove_member"):
        gname = form.get("group", "")
        adding = action == "add_member"
        await groups.change_members(ctx, None, gname, [name], add=adding)
        return f"{'Added' if adding else 'Removed'} {name} {'to' if adding else 'from'} {gname}."
    return f"Unknown action {action[:32]!r}."


@page
async def admin_action(request: Request) -> Response:
    ctx, who = await _admin(request)
    form = await checked_form(request)
    fields = {k: str(v) for k, v in form.items()}
    back = safe_next(request, fields.get("next")) or f"{web_of(request).urls.hub_prefix}admin"
    try:
        message = await _do(ctx, who, fields)
    except HubkitError as exc:
        message = f"Error: {exc}"
    sep = "&" if "?" in back else "?"
    return redirect(f"{back}{sep}{urlencode({'message': message[:300]})}", status=303)


def routes(p: str) -> list[Route]:
    return page_routes(p, {"admin": {"GET": admin}, "admin/action": {"POST": admin_action}})
