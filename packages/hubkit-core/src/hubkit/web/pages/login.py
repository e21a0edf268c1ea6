"""``/hub/login``, ``/hub/logout`` and the redirect-login endpoints ``/hub/oauth_login`` / ``oauth_callback``."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth import forwarded
from ...errors import AuthFailed, TooManyRequests, Unavailable
from ...interfaces import LoginKind, RedirectAuthenticator
from ...services import login
from .. import cookies
from ..caller import logged_in_user
from ..context import web_of
from ..errors import headers_of, status_of
from ..render import error_page, redirect, render
from .common import checked_form, page, page_routes, safe_next, services

log = logging.getLogger("hubkit.login")


def _home(request: Request) -> str:
    return web_of(request).urls.hub_prefix + "home"


def _login_context(request: Request, next_url: str | None) -> dict[str, object]:
    auth = services(request).authenticator
    ctx: dict[str, object] = {"next": next_url, "auth_name": auth.display_name}
    if auth.login_kind == LoginKind.REDIRECT:
        ctx["redirect_url"] = auth.login_url(next_url or "")
    return ctx


@page
async def login_get(request: Request) -> Response:
    next_url = safe_next(request, request.query_params.get("next"))
    if await logged_in_user(request) is not None:
        return redirect(next_url or _home(request))
    return render(request, "login.html", _login_context(request, next_url))


@page
async def login_post(request: Request) -> Response:
    next_url = safe_next(request, request.query_params.get("next"))
    form = await checked_form(request, max_fields=50)
    username = str(form.get("username", ""))
    extra = {k: str(v) for k, v in form.items() if k not in ("password", "_xsrf")}
    metrics = web_of(request).metrics
    try:
        who = await login.form_login(
            services(request), username, str(form.get("password", "")), forwarded.of(request).addr, extra
        )
    except (AuthFailed, TooManyRequests) as exc:
        metrics.login("throttled" if isinstance(exc, TooManyRequests) else "refused")
        ctx = {**_login_context(request, next_url), "error": str(exc), "username": username[:255]}
        refused = render(request, "login.html", ctx, status=status_of(exc))
        refused.headers.update(headers_of(exc))
        return refused
    metrics.login("ok")
    resp = redirect(next_url or _home(request))
    cookies.set_session(request, resp, user_id=who.user_id, cookie_id=who.cookie_id)
    return resp


@page
async def logout(request: Request) -> Response:
    sess = cookies.read_session(request)
    target = web_of(request).urls.hub_prefix + "login"
    if sess is not None:
        target = await login.logout(services(request), sess.user_id, sess.session_id) or target
    resp = redirect(target)
    cookies.clear_session(request, resp)
    return resp


def _callback_url(request: Request) -> str:
    path = web_of(request).urls.hub_prefix + "oauth_callback"
    hub = services(request).settings.hub
    public = hub.subdomain_host or hub.public_url
    if public:
        return public.rstrip("/") + path
    return str(request.base_url).rstrip("/") + path


def _redirect_authenticator(request: Request) -> RedirectAuthenticator | None:
    auth = services(request).authenticator
    if auth.login_kind != LoginKind.REDIRECT or not isinstance(auth, RedirectAuthenticator):
        return None
    return auth


@page
async def oauth_login(request: Request) -> Response:
    auth = _redirect_authenticator(request)
    if auth is None:
        return redirect(web_of(request).urls.hub_prefix + "login")
    next_url = safe_next(request, request.query_params.get("next")) or ""
    try:
        start = await auth.start_login(next_url, _callback_url(request))
    except AuthFailed as exc:
        raise Unavailable(f"Sign-in is unavailable: {exc}") from None
    resp = redirect(start.url)
    cookies.set_login_state(request, resp, start.state)
    return resp


@page
async def oauth_callback(request: Request) -> Response:
    state = cookies.take_login_state(request)
    if state is None:
        log.info(
            "oauth login refused from %s: no login attempt in this browser (state cookie missing or expired)",
            forwarded.of(request).addr,
        )
        return error_page(
            request, 400, "The sign-in took too long or came from another browser; please try again."
        )
    auth = _redirect_authenticator(request)
    if auth is None:
        return redirect(web_of(request).urls.hub_prefix + "login")
    params = {k: v[:4096] for k, v in request.query_params.items()}
    metrics = web_of(request).metrics
    try:
        done = await auth.complete_login(params, state, _callback_url(request))
        who = await login.complete(services(request), done.result)
    except AuthFailed as exc:
        metrics.login("refused")
        return error_page(request, 403, str(exc) or "Sign-in was refused.")
    metrics.login("ok")
    resp = redirect(safe_next(request, done.next_url) or _home(request))
    cookies.take_login_state(request, resp)
    cookies.set_session(request, resp, user_id=who.user_id, cookie_id=who.cookie_id)
    return resp


def routes(p: str) -> list[Route]:
    return page_routes(
        p,
        {
            "login": {"GET": login_get, "POST": login_post},
            "logout": {"GET": logout, "POST": logout},
            "oauth_login": {"GET": oauth_login},
            "oauth_callback": {"GET": oauth_callback},
        },
    )
