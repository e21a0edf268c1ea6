"""``/hub/home``, ``/hub/spawn/<user>[/<server>]``, ``/hub/spawn-pending/...`` and server stop/delete forms.

Every action is a plain HTML form POST (works without JavaScript) guarded by the XSRF checks; the pending
page adds live progress over server-sent events when JavaScript is on and refreshes itself when it is not.

One exception, as in JupyterHub: ``GET /hub/spawn[/<user>[/<server>]]`` starts a server that has no options
form at once, because course links (nbgitpuller, LMS launchers) are plain links. It only ever starts the
caller's own servers, or another's when the request came from this hub's own pages; a cross-site link to
someone else's server shows the Start button instead. ``?next=`` (a path on this site) is where the browser
lands once the server is ready.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth.identity import Identity
from ...errors import BadRequest, InvalidOptions, NotFound
from ...services import hub_services, servers
from ...services.views import event_json, progress_url
from ..context import web_of
from ..render import redirect, render
from .common import checked_form, page, page_routes, require_login, safe_next

READ = ("read:servers",)
ACT = ("servers",)


def _suffix(user: str, server: str) -> str:
    return quote(user, safe="") + (f"/{quote(server, safe='')}" if server else "")


def _hub(request: Request, path: str, user: str, server: str, next_url: str | None = None) -> str:
    url = f"{web_of(request).urls.hub_prefix}{path}/{_suffix(user, server)}"
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _next(request: Request, form: Any = None) -> str | None:
    """Where to land once the server is ready: ``next`` from the form or the query, same-site paths only."""
    raw = form.get("next") if form is not None else None
    return safe_next(request, str(raw) if raw else request.query_params.get("next"))


def _may_start_on_get(request: Request, who: Identity, ref: servers.ServerRef) -> bool:
    """A link may start the caller's own server from anywhere; someone else's only from this hub's pages."""
    if ref.user.name == who.name:
        return True
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


async def _server(request: Request, scopes: tuple[str, ...], server: str | None = None) -> Any:
    ctx, who = await require_login(request)
    name = server if server is not None else request.path_params.get("server", "")
    ref = await servers.load(ctx, who, request.path_params.get("user", who.name), name, scopes)
    return ctx, who, ref


@page
async def home(request: Request) -> Response:
    ctx, who = await require_login(request)
    owner, rows = await servers.home_rows(ctx, who)
    links = await hub_services.links_for(ctx, who)
    return render(
        request,
        "home.html",
        {
            "user": who.name,
            "servers": rows,
            "named": ctx.settings.hub.allow_named_servers,
            "has_options": ctx.spawner.options_form(owner) is not None,
            "message": request.query_params.get("message", "")[:200],
            "services": links,
        },
    )


def _spawn_page(
    request: Request, ref: servers.ServerRef, form_html: str, error: str = "", next_url: str | None = None
) -> Response:
    context = {
        "owner": ref.user.name,
        "server_name": ref.name,
        "options_html": form_html,
        "action": _hub(request, "spawn", ref.user.name, ref.name),
        "next": next_url or "",
    }
    if error:
        context["error"] = error
    return render(request, "spawn.html", context, status=400 if error else 200)


@page
async def spawn_get(request: Request) -> Response:
    if "user" not in request.path_params:
        _, who = await require_login(request)
        return redirect(_hub(request, "spawn", who.name, "", _next(request)))
    ctx, who, ref = await _server(request, ACT)
    next_url = _next(request)
    if ref.running:
        return redirect(next_url or ctx.urls.server_url(ref.user.name, ref.name))
    if ref.pending:
        return redirect(_hub(request, "spawn-pending", ref.user.name, ref.name, next_url))
    form = servers.options_form(ctx, ref)
    if form is None and _may_start_on_get(request, who, ref):
        await servers.request_start(ctx, ref, None)
        return redirect(_hub(request, "spawn-pending", ref.user.name, ref.name, next_url))
    return _spawn_page(request, ref, form.html if form else "", next_url=next_url)


@page
async def spawn_post(request: Request) -> Response:
    await require_login(request)
    form = await checked_form(request)
    if "user" not in request.path_params:
        raise NotFound("Not found")
    name = request.path_params.get("server") or str(form.get("server_name", "")).strip()
    ctx, _, ref = await _server(request, ACT, server=name)
    next_url = _next(request, form)
    spawn_form = servers.options_form(ctx, ref)
    grouped: dict[str, list[Any]] = {}
    for k, v in form.multi_items():
        if k not in ("_xsrf", "server_name", "next") and isinstance(v, str):
            grouped.setdefault(k, []).append(v)
    try:
        await servers.request_start(ctx, ref, servers.form_options(ctx, ref, grouped) or None)
    except InvalidOptions as exc:
        return _spawn_page(request, ref, spawn_form.html if spawn_form else "", str(exc), next_url)
    return redirect(_hub(request, "spawn-pending", ref.user.name, ref.name, next_url), status=303)


@page
async def spawn_pending(request: Request) -> Response:
    ctx, _, ref = await _server(request, READ)
    url = ctx.urls.server_url(ref.user.name, ref.name)
    next_url = _next(request)
    context: dict[str, Any] = {
        "owner": ref.user.name,
        "server_name": ref.name,
        "url": url,
        "next": next_url or "",
    }
    if ref.running:
        if next_url:
            return redirect(next_url)
        return render(
            request, "spawn_pending.html", {**context, "ready": True, "events": [], "progress_url": ""}
        )
    latest = await servers.latest_spawn(ctx, ref)
    pending = ref.pending
    failed = not pending and latest is not None and latest.outcome == "failed"
    if not pending and not failed:
        return redirect(_hub(request, "spawn", ref.user.name, ref.name, next_url))
    return render(
        request,
        "spawn_pending.html",
        {
            **context,
            "ready": False,
            "events": [event_json(ev, "") for ev in latest.events] if latest is not None else [],
            # the event stream replays the spawn from its start: the page skips what it already shows
            "last_seq": latest.last_seq if latest is not None else 0,
            "pending": pending,
            "failed": failed,
            "reason": latest.message if failed and latest else "",
            "reason_code": latest.reason_code if failed and latest else "",
            "progress_url": progress_url(ctx.urls, ref.user.name, ref.name),
            "spawn_url": _hub(request, "spawn", ref.user.name, ref.name),
        },
    )


@page
async def server_action(request: Request) -> Response:
    """Stop or delete a server from the home or admin page (form fields ``user``, ``server``, ``action``)."""
    ctx, who = await require_login(request)
    form = await checked_form(request)
    owner, server_name, action = (str(form.get(k, "")) for k in ("user", "server", "action"))
    back = safe_next(request, str(form.get("next", ""))) or f"{web_of(request).urls.hub_prefix}home"
    ref = await servers.may_stop(ctx, who, owner, server_name)
    if action == "stop":
        await servers.stop(ctx, ref, reason=f"stopped by {who.name}")
    elif action == "delete" and server_name:
        await servers.stop(ctx, ref, remove=True, reason=f"deleted by {who.name}")
    else:
        raise BadRequest(f"Unknown action {action[:32]!r}")
    return redirect(back, status=303)


def routes(p: str) -> list[Route]:
    return page_routes(
        p,
        {
            "home": {"GET": home},
            "spawn": {"GET": spawn_get},
            "spawn/{user}": {"GET": spawn_get, "POST": spawn_post},
            "spawn/{user}/{server}": {"GET": spawn_get, "POST": spawn_post},
            "spawn-pending/{user}": {"GET": spawn_pending},
            "spawn-pending/{user}/{server}": {"GET": spawn_pending},
            "servers/action": {"POST": server_action},
        },
    )
