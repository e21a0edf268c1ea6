"""``/hub/login``, ``/hub/logout`` and the redirect-login endpoints ``/hub/oauth_login`` / ``oauth_callback``."""

from __future__ import annotations

import logging
from urllib.parse import quote

from sqlalchemy import delete
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...auth import forwarded
from ...auth.login import LoginError, complete, form_login
from ...auth.sessions import clear_session, hub_prefix, is_secure, read_session, set_session
from ...auth.signing import sign, unsign
from ...errors import AuthFailed
from ...interfaces import LoginKind, RedirectAuthenticator, UserInfo
from ...storage.orm import APIToken, User
from ..render import error_page, redirect, render
from .common import PageError, checked_form, current_user, hub_of, page, safe_next

STATE_COOKIE = "hubkit-oauth-state"
STATE_MAX_AGE = 600
log = logging.getLogger("hubkit.login")


def _home(request: Request) -> str:
    return hub_prefix(hub_of(request)) + "home"


def _login_context(request: Request, next_url: str | None) -> dict[str, object]:
    hub = hub_of(request)
    auth = hub.authenticator
    ctx: dict[str, object] = {"next": next_url, "auth_name": auth.display_name}
    if auth.login_kind == LoginKind.REDIRECT:
        ctx["redirect_url"] = auth.login_url(next_url or "")
    return ctx


@page
async def login_get(request: Request) -> Response:
    hub = hub_of(request)
    next_url = safe_next(hub, request.query_params.get("next"))
    if await current_user(request) is not None:
        return redirect(next_url or _home(request))
    return render(request, "login.html", _login_context(request, next_url))


@page
async def login_post(request: Request) -> Response:
    hub = hub_of(request)
    next_url = safe_next(hub, request.query_params.get("next"))
    form = await checked_form(request, max_fields=50)
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    addr = forwarded.of(request).addr
    extra = {k: str(v) for k, v in form.items() if k not in ("password", "_xsrf")}
    metrics = request.app.state.metrics
    try:
        who = await form_login(hub, request.app.state.limiter, username, password, addr, extra)
    except LoginError as exc:
        metrics.login((exc.status == 429 and "throttled") or "refused")
        ctx = {**_login_context(request, next_url), "error": exc.message, "username": username[:255]}
        page_resp = render(request, "login.html", ctx, status=exc.status)
        if exc.retry_after:
            page_resp.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return page_resp
    metrics.login("ok")
    resp = redirect(next_url or _home(request))
    set_session(hub, request, resp, user_id=who.user_id, cookie_id=who.cookie_id)
    return resp


@page
async def logout(request: Request) -> Response:
    hub = hub_of(request)
    sess = read_session(hub, request)
    target = hub_prefix(hub) + "login"
    if sess is not None:
        async with hub.db() as session:
            await session.execute(
                delete(APIToken).where(APIToken.session_id == sess.session_id, APIToken.kind == "oauth")
            )
            user = await session.get(User, sess.user_id)
            await session.commit()
            if user is not None:
                info = UserInfo(name=user.name, admin=user.admin, id=user.id)
                try:
                    state = user.auth_state if user.auth_state is not None else None
                except RuntimeError:
                    state = None
                upstream = hub.authenticator.logout_url(info, state)
                if upstream:
                    target = upstream
    resp = redirect(target)
    clear_session(hub, resp)
    return resp


def _callback_url(request: Request) -> str:
    hub = hub_of(request)
    path = hub_prefix(hub) + "oauth_callback"
    public = hub.settings.hub.public_url
    if public:
        return public.rstrip("/") + path
    return str(request.base_url).rstrip("/") + path


@page
async def oauth_login(request: Request) -> Response:
    hub = hub_of(request)
    auth = hub.authenticator
    if auth.login_kind != LoginKind.REDIRECT or not isinstance(auth, RedirectAuthenticator):
        return redirect(hub_prefix(hub) + "login")
    next_url = safe_next(hub, request.query_params.get("next")) or ""
    try:
        start = await auth.start_login(next_url, _callback_url(request))
    except AuthFailed as exc:
        return error_page(request, 503, f"Sign-in is unavailable: {exc}")
    resp = redirect(start.url)
    resp.set_cookie(
        STATE_COOKIE,
        sign(hub.cookie_secret, STATE_COOKIE, start.state),
        max_age=STATE_MAX_AGE,
        path=hub_prefix(hub),
        httponly=True,
        samesite="lax",
        secure=is_secure(hub, request),
    )
    return resp


@page
async def oauth_callback(request: Request) -> Response:
    hub = hub_of(request)
    state = unsign(hub.cookie_secret, STATE_COOKIE, request.cookies.get(STATE_COOKIE), max_age=STATE_MAX_AGE)
    if state is None:
        log.info(
            "oauth login refused from %s: no login attempt in this browser (state cookie missing or expired)",
            forwarded.of(request).addr,
        )
        return error_page(
            request, 400, "The sign-in took too long or came from another browser; please try again."
        )
    auth = hub.authenticator
    if not isinstance(auth, RedirectAuthenticator):
        return redirect(hub_prefix(hub) + "login")
    params = {k: v[:4096] for k, v in request.query_params.items()}
    try:
        done = await auth.complete_login(params, state, _callback_url(request))
        who = await complete(hub, done.result)
    except AuthFailed as exc:
        request.app.state.metrics.login("refused")
        return error_page(request, 403, str(exc) or "Sign-in was refused.")
    except LoginError as exc:
        request.app.state.metrics.login("refused")
        return error_page(request, exc.status, exc.message)
    request.app.state.metrics.login("ok")
    resp = redirect(safe_next(hub, done.next_url) or _home(request))
    resp.delete_cookie(STATE_COOKIE, path=hub_prefix(hub))
    set_session(hub, request, resp, user_id=who.user_id, cookie_id=who.cookie_id)
    return resp


def routes(p: str) -> list[Route]:
    return [
        Route(f"{p}login", login_get, methods=["GET"]),
        Route(f"{p}login", login_post, methods=["POST"]),
        Route(f"{p}logout", logout, methods=["GET", "POST"]),
        Route(f"{p}oauth_login", oauth_login, methods=["GET"]),
        Route(f"{p}oauth_callback", oauth_callback, methods=["GET"]),
    ]


__all__ = ["PageError", "quote", "routes"]
