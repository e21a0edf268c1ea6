"""``/hub/home``, ``/hub/spawn/<user>[/<server>]``, ``/hub/spawn-pending/...`` and server stop/delete forms.

Every action is a plain HTML form POST (works without JavaScript) guarded by the XSRF checks; the pending
page adds live progress over server-sent events when JavaScript is on and refreshes itself when it is not.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...api.models import PENDING, iso
from ...api.progress import event_json
from ...auth import scopes as sc
from ...auth.identity import Identity
from ...auth.sessions import hub_prefix
from ...errors import Conflict, InvalidOptions, LimitReached
from ...interfaces import Phase, ProgressEvent
from ...services import users as svc
from ...storage.orm import Server, ServerStatus, Spawn, SpawnEvent, User
from ..render import error_page, redirect, render
from .common import PageError, checked_form, hub_of, page, require_login, safe_next


def _suffix(user: str, server: str) -> str:
    return quote(user, safe="") + (f"/{quote(server, safe='')}" if server else "")


def _names(request: Request, ident: Identity) -> tuple[str, str]:
    user = request.path_params.get("user", ident.name)
    server = request.path_params.get("server", "")
    svc.check_name(user)
    if server:
        svc.check_name(server, what="server name")
    return user, server


def _may(ident: Identity, scope: str, user: User, server: str = "") -> bool:
    return sc.allows(
        ident.scopes, scope, user=user.name, server=server, user_groups=[g.name for g in user.groups]
    )


async def _load(request: Request, ident: Identity, scope: str) -> tuple[User, str, Server | None]:
    hub = hub_of(request)
    user_name, server_name = _names(request, ident)
    async with hub.db() as session:
        user = await svc.get_user(session, user_name)
        if user is None or not _may(ident, scope, user, server_name):
            raise PageError(error_page(request, 404, f"No such user or no access: {user_name}"))
        server = next((s for s in user.servers if s.name == server_name), None)
    if server_name and not hub.settings.hub.allow_named_servers:
        raise PageError(error_page(request, 400, "Named servers are not enabled on this hub."))
    return user, server_name, server


def server_row(hub: Any, user: str, s: Server) -> dict[str, Any]:
    p = hub_prefix(hub)
    return {
        "name": s.name,
        "label": s.display_name or s.name or "default",
        "status": str(s.status),
        "pending": PENDING.get(s.status),
        "ready": s.status == ServerStatus.RUNNING,
        "url": hub.server_url(user, s.name),
        "spawn_url": f"{p}spawn/{_suffix(user, s.name)}",
        "pending_url": f"{p}spawn-pending/{_suffix(user, s.name)}",
        "last_activity": iso(s.last_activity),
        "started": iso(s.started),
    }


@page
async def home(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    async with hub.db() as session:
        user = await svc.require_user(session, ident.name)
        servers = sorted(user.servers, key=lambda s: (s.name != "", s.name))
        rows = [server_row(hub, user.name, s) for s in servers]
    if not any(r["name"] == "" for r in rows):
        p = hub_prefix(hub)
        rows.insert(
            0,
            {
                "name": "",
                "label": "default",
                "status": "stopped",
                "pending": None,
                "ready": False,
                "url": hub.server_url(ident.name),
                "spawn_url": f"{p}spawn/{_suffix(ident.name, '')}",
                "pending_url": f"{p}spawn-pending/{_suffix(ident.name, '')}",
                "last_activity": None,
                "started": None,
            },
        )
    has_options = hub.spawner.options_form(svc.info(user)) is not None
    return render(
        request,
        "home.html",
        {
            "user": ident.name,
            "servers": rows,
            "named": hub.settings.hub.allow_named_servers,
            "has_options": has_options,
            "message": request.query_params.get("message", "")[:200],
        },
    )


@page
async def spawn_get(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    if "user" not in request.path_params:
        return redirect(f"{hub_prefix(hub)}spawn/{_suffix(ident.name, '')}")
    user, server_name, server = await _load(request, ident, "servers")
    if server is not None and server.status == ServerStatus.RUNNING:
        return redirect(hub.server_url(user.name, server_name))
    if server is not None and server.status in (ServerStatus.QUEUED, ServerStatus.STARTING):
        return redirect(f"{hub_prefix(hub)}spawn-pending/{_suffix(user.name, server_name)}")
    form = hub.spawner.options_form(svc.info(user))
    return render(
        request,
        "spawn.html",
        {
            "owner": user.name,
            "server_name": server_name,
            "options_html": form.html if form else "",
            "action": f"{hub_prefix(hub)}spawn/{_suffix(user.name, server_name)}",
        },
    )


@page
async def spawn_post(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    form = await checked_form(request)
    if "user" not in request.path_params:
        raise PageError(error_page(request, 404, "Not found"))
    extra_name = str(form.get("server_name", "")).strip()
    if extra_name and not request.path_params.get("server"):
        request.path_params["server"] = extra_name
    user, server_name, _ = await _load(request, ident, "servers")
    uinfo = svc.info(user)
    fields = {k: v for k, v in form.multi_items() if k not in ("_xsrf", "server_name") and isinstance(v, str)}
    options: dict[str, Any] = {}
    spawn_form = hub.spawner.options_form(uinfo)
    action = f"{hub_prefix(hub)}spawn/{_suffix(user.name, server_name)}"
    if spawn_form is not None:
        grouped: dict[str, Any] = {}
        for k, v in form.multi_items():
            if k in fields:
                grouped.setdefault(k, []).append(v)
        try:
            options = hub.spawner.parse_options(uinfo, grouped)
        except InvalidOptions as exc:
            return render(
                request,
                "spawn.html",
                {
                    "owner": user.name,
                    "server_name": server_name,
                    "error": str(exc),
                    "options_html": spawn_form.html,
                    "action": action,
                },
                status=400,
            )
    try:
        await hub.spawns.request_start(user.name, server_name, options or None)
    except InvalidOptions as exc:
        return render(
            request,
            "spawn.html",
            {
                "owner": user.name,
                "server_name": server_name,
                "error": str(exc),
                "options_html": spawn_form.html if spawn_form else "",
                "action": action,
            },
            status=400,
        )
    except (Conflict, LimitReached) as exc:
        return error_page(request, 409 if isinstance(exc, Conflict) else 400, str(exc))
    return redirect(f"{hub_prefix(hub)}spawn-pending/{_suffix(user.name, server_name)}", status=303)


async def _stored_events(hub: Any, spawn_id: int | None) -> tuple[list[dict[str, Any]], Spawn | None]:
    if spawn_id is None:
        return [], None
    async with hub.db() as session:
        spawn = await session.get(Spawn, spawn_id)
        rows = (
            await session.execute(
                select(SpawnEvent).where(SpawnEvent.spawn_id == spawn_id).order_by(SpawnEvent.id)
            )
        ).scalars()
        events = []
        for r in rows:
            try:
                phase = Phase(r.phase)
            except ValueError:
                phase = Phase.STARTING
            events.append(
                event_json(ProgressEvent(phase, r.message, r.progress, r.reason_code, r.queue_position), "")
            )
    return events, spawn


@page
async def spawn_pending(request: Request) -> Response:
    hub = hub_of(request)
    ident = await require_login(request)
    user, server_name, server = await _load(request, ident, "read:servers")
    url = hub.server_url(user.name, server_name)
    if server is not None and server.status == ServerStatus.RUNNING:
        return render(
            request,
            "spawn_pending.html",
            {
                "owner": user.name,
                "server_name": server_name,
                "ready": True,
                "url": url,
                "events": [],
                "progress_url": "",
            },
        )
    spawn_id = await hub.spawns.latest_spawn_id(user.name, server_name)
    events, spawn = await _stored_events(hub, spawn_id)
    pending = server is not None and server.status in (ServerStatus.QUEUED, ServerStatus.STARTING)
    failed = not pending and spawn is not None and spawn.outcome == "failed"
    if not pending and not failed:
        return redirect(f"{hub_prefix(hub)}spawn/{_suffix(user.name, server_name)}")
    api = hub_prefix(hub) + "api/users/" + quote(user.name, safe="")
    progress_url = api + (
        f"/servers/{quote(server_name, safe='')}/progress" if server_name else "/server/progress"
    )
    return render(
        request,
        "spawn_pending.html",
        {
            "owner": user.name,
            "server_name": server_name,
            "ready": False,
            "url": url,
            "events": events,
            "pending": pending,
            "failed": failed,
            "reason": spawn.message if failed and spawn else "",
            "reason_code": spawn.reason_code if failed and spawn else "",
            "progress_url": progress_url,
            "spawn_url": f"{hub_prefix(hub)}spawn/{_suffix(user.name, server_name)}",
        },
    )


@page
async def server_action(request: Request) -> Response:
    """Stop or delete a server from the home or admin page (form fields ``user``, ``server``, ``action``)."""
    hub = hub_of(request)
    ident = await require_login(request)
    form = await checked_form(request)
    owner, server_name, action = (str(form.get(k, "")) for k in ("user", "server", "action"))
    back = safe_next(hub, str(form.get("next", ""))) or f"{hub_prefix(hub)}home"
    svc.check_name(owner)
    async with hub.db() as session:
        user = await svc.require_user(session, owner)
        if not _may(ident, "delete:servers", user, server_name):
            return error_page(request, 403, "You may not stop this server.")
    if action == "stop":
        await hub.spawns.stop(owner, server_name, reason=f"stopped by {ident.name}")
    elif action == "delete" and server_name:
        await hub.spawns.stop(owner, server_name, remove=True, reason=f"deleted by {ident.name}")
    else:
        return error_page(request, 400, f"Unknown action {action[:32]!r}")
    return redirect(back, status=303)


def routes(p: str) -> list[Route]:
    return [
        Route(f"{p}home", home, methods=["GET"]),
        Route(f"{p}spawn", spawn_get, methods=["GET"]),
        Route(f"{p}spawn/{{user}}", spawn_get, methods=["GET"]),
        Route(f"{p}spawn/{{user}}", spawn_post, methods=["POST"]),
        Route(f"{p}spawn/{{user}}/{{server}}", spawn_get, methods=["GET"]),
        Route(f"{p}spawn/{{user}}/{{server}}", spawn_post, methods=["POST"]),
        Route(f"{p}spawn-pending/{{user}}", spawn_pending, methods=["GET"]),
        Route(f"{p}spawn-pending/{{user}}/{{server}}", spawn_pending, methods=["GET"]),
        Route(f"{p}servers/action", server_action, methods=["POST"]),
    ]
