"""Logging in and out. The pipeline shared by the form login and redirect (OAuth) authenticators:

normalize → rate limit → authenticate → ``hubkit_check_allowed`` → ``hubkit_post_auth`` → store the user.
Refusals are :class:`~hubkit.errors.AuthFailed` (never saying whether an account exists) or
:class:`~hubkit.errors.TooManyRequests`; the web layer turns them into the login page's answer.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, select

from ..auth.identity import Identity
from ..auth.refresh import apply_refresh
from ..errors import AuthFailed, Broken, Forbidden, InvalidName, LoginExpired, NotFound, TooManyRequests
from ..interfaces import AuthResult, Credentials, JSONDict, UserInfo
from ..storage.orm import APIToken, Group, User
from ..storage.races import retry_unique
from . import access
from . import users as svc
from .context import ServiceContext
from .names import check_name

log = logging.getLogger("hubkit.login")
REFUSED = "Invalid username or password."


@dataclass(frozen=True)
class LoggedIn:
    user_id: int
    name: str
    cookie_id: str
    admin: bool


def _safe(name: str) -> str:
    return name[:64].encode("unicode_escape").decode()


async def form_login(
    ctx: ServiceContext, username: str, password: str, remote_addr: str, form: dict[str, str]
) -> LoggedIn:
    raw = username[:1024]
    limiter = ctx.limiter
    try:
        name = await svc.normalize(ctx, raw)
    except InvalidName:
        raise AuthFailed(REFUSED) from None
    # counted now, before the password is checked: parallel guesses must not all pass the limit
    wait = await limiter.attempt(name, remote_addr)
    if wait > 0:
        raise TooManyRequests("Too many failed logins; try again later.", retry_after=wait)
    try:
        result = await ctx.authenticator.authenticate(
            Credentials(username=name, password=password, remote_addr=remote_addr, form=form)
        )
    except AuthFailed as exc:
        log.info("login refused for %s from %s", _safe(name), remote_addr)
        raise AuthFailed(str(exc) or REFUSED) from None
    if result is None:
        log.info("login refused for %s from %s", _safe(name), remote_addr)
        raise AuthFailed(REFUSED)
    await limiter.passed(name, remote_addr)
    return await complete(ctx, result)


def usable_groups(user: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """Group names from an identity provider, in NFKC form (``ﬁnance`` → ``finance``, full-width letters →
    ASCII); one the hub's name rules still refuse is skipped and logged, never a reason to refuse the login."""
    out: list[str] = []
    for raw in names:
        name = unicodedata.normalize("NFKC", raw)
        try:
            check_name(name, what="group name")
        except InvalidName as exc:
            log.warning("login of %s: group %s skipped: %s", _safe(user), _safe(raw), exc)
            continue
        if name not in out:
            out.append(name)
    return out


async def complete(ctx: ServiceContext, result: AuthResult) -> LoggedIn:
    """Admit an authenticated identity: allow-lists, post-auth hooks, then create/update the user row."""
    try:
        name = await svc.normalize(ctx, result.name)
    except InvalidName as exc:
        raise AuthFailed(f"The identity provider returned an unusable user name: {exc}") from None
    if name != result.name:
        result = AuthResult(name, result.admin, result.groups, result.auth_state, result.user_info)
    if not await ctx.hooks.check_allowed(result):
        raise AuthFailed(f"User {name} is not allowed to use this hub.")
    result = await ctx.hooks.post_auth(result)
    s = ctx.settings
    forced_admin = name in s.hub.admin_users or name in s.auth.admin_users
    created = False

    async def store() -> LoggedIn:
        nonlocal created
        async with ctx.storage.session() as session:
            user = await svc.get_user(session, name)
            created = user is None
            if user is None:
                user = svc.new_user(name)
                session.add(user)
            if result.admin is not None:
                user.admin = result.admin
            if forced_admin:
                user.admin = True
            if result.groups is not None:
                wanted = usable_groups(name, result.groups)
                groups = list((await session.execute(select(Group).where(Group.name.in_(wanted)))).scalars())
                have = {g.name for g in groups}
                for g in wanted:
                    if g not in have:
                        grp = Group(name=g, properties={}, users=[])
                        session.add(grp)
                        groups.append(grp)
                user.groups = groups
            if result.auth_state is not None and ctx.crypt.enabled:
                user.auth_state = result.auth_state
            if result.user_info is not None:
                user.user_info = result.user_info
            await session.commit()
            return LoggedIn(user.id, user.name, user.cookie_id, user.admin)

    # simultaneous first logins of one user (or of two users bringing the same new group) race to insert
    out = await retry_unique(store)
    if created:
        await ctx.hooks.user_created(UserInfo(name=out.name, admin=out.admin, id=out.user_id))
    log.info("user %s logged in", _safe(name))
    return out


async def logout(ctx: ServiceContext, user_id: int, session_id: str) -> str | None:
    """End a browser session: revoke the OAuth tokens its user servers got through it. Returns where the
    authenticator wants the browser next (RP-initiated logout at the provider), or ``None``."""
    async with ctx.storage.session() as session:
        await session.execute(
            delete(APIToken).where(APIToken.session_id == session_id, APIToken.kind == "oauth")
        )
        user = await session.get(User, user_id)
        await session.commit()
        if user is None:
            return None
        info = UserInfo(name=user.name, admin=user.admin, id=user.id)
        try:
            state = user.auth_state if user.auth_state is not None else None
        except RuntimeError:
            state = None
    return ctx.authenticator.logout_url(info, state)


async def fresh_auth_state(ctx: ServiceContext, caller: Identity, name: str) -> JSONDict | None:
    """A user's upstream auth state, refreshed first (``GET /users/{name}/auth-state``).

    Single-user servers read fresh provider tokens here instead of tokens frozen into their environment at spawn
    time. Allowed for ``admin:auth_state`` or for a server token of that same user. A refreshed state is stored
    (encrypted) before it is returned; an expired upstream login is :class:`~hubkit.errors.LoginExpired`."""
    own_server = caller.kind == "user" and caller.token_kind == "server" and caller.name == name
    if not (own_server or access.may(caller, "admin:auth_state", user=name)):
        raise Forbidden("Reading auth state needs the admin:auth_state scope or the user's own server token")
    if not ctx.crypt.enabled:
        raise NotFound("No auth state is stored: the hub has no encryption key (crypt_keys)")
    async with ctx.storage.session() as session:
        user = await svc.get_user(session, name)
        if user is None:
            raise NotFound(access.HIDDEN)
        try:
            state = user.auth_state
        except RuntimeError:
            raise Broken("The stored auth state cannot be decrypted with the configured keys") from None
        outcome = await ctx.authenticator.refresh_user(svc.info(user), state)
        if outcome is False:
            raise LoginExpired("The login provider session has expired: log in to the hub again")
        if apply_refresh(user, outcome):
            await session.commit()
        if isinstance(outcome, AuthResult) and outcome.auth_state is not None:
            state = outcome.auth_state
    return state  # type: ignore[no-any-return]
