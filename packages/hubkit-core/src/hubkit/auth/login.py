"""The login pipeline shared by the form login and redirect (OAuth) authenticators:

normalize → rate limit → authenticate → ``hubkit_check_allowed`` → ``hubkit_post_auth`` → store the user.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..errors import AuthFailed
from ..interfaces import AuthResult, Credentials, UserInfo
from ..services import users as svc
from ..storage.orm import Group
from ..storage.races import retry_unique
from .ratelimit import LoginRateLimiter

if TYPE_CHECKING:
    from ..runtime.hub import Hub

log = logging.getLogger("hubkit.login")
REFUSED = "Invalid username or password."


class LoginError(Exception):
    def __init__(self, message: str, *, status: int = 403, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoggedIn:
    user_id: int
    name: str
    cookie_id: str
    admin: bool


def _safe(name: str) -> str:
    return name[:64].encode("unicode_escape").decode()


async def form_login(
    hub: Hub, limiter: LoginRateLimiter, username: str, password: str, remote_addr: str, form: dict[str, str]
) -> LoggedIn:
    raw = username[:1024]
    try:
        name = await svc.normalize(hub, raw)
    except svc.InvalidName:
        raise LoginError(REFUSED) from None
    wait = limiter.retry_after(name, remote_addr)
    if wait > 0:
        raise LoginError("Too many failed logins; try again later.", status=429, retry_after=wait)
    limiter.failed(name, remote_addr)  # counted now: parallel guesses must not all pass the check above
    try:
        result = await hub.authenticator.authenticate(
            Credentials(username=name, password=password, remote_addr=remote_addr, form=form)
        )
    except AuthFailed as exc:
        log.info("login refused for %s from %s", _safe(name), remote_addr)
        raise LoginError(str(exc) or REFUSED) from None
    if result is None:
        log.info("login refused for %s from %s", _safe(name), remote_addr)
        raise LoginError(REFUSED)
    limiter.succeeded(name, remote_addr)
    return await complete(hub, result)


def usable_groups(user: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """Group names from an identity provider, in NFKC form (``ﬁnance`` → ``finance``, full-width letters →
    ASCII); one the hub's name rules still refuse is skipped and logged, never a reason to refuse the login."""
    out: list[str] = []
    for raw in names:
        name = unicodedata.normalize("NFKC", raw)
        try:
            svc.check_name(name, what="group name")
        except svc.InvalidName as exc:
            log.warning("login of %s: group %s skipped: %s", _safe(user), _safe(raw), exc)
            continue
        if name not in out:
            out.append(name)
    return out


async def complete(hub: Hub, result: AuthResult) -> LoggedIn:
    """Admit an authenticated identity: allow-lists, post-auth hooks, then create/update the user row."""
    try:
        name = await svc.normalize(hub, result.name)
    except svc.InvalidName as exc:
        raise LoginError(f"The identity provider returned an unusable user name: {exc}") from None
    if name != result.name:
        result = AuthResult(name, result.admin, result.groups, result.auth_state, result.user_info)
    if not await hub.hooks.check_allowed(result):
        raise LoginError(f"User {name} is not allowed to use this hub.")
    result = await hub.hooks.post_auth(result)
    s = hub.settings
    forced_admin = name in s.hub.admin_users or name in s.auth.admin_users
    created = False

    async def store() -> LoggedIn:
        nonlocal created
        async with hub.db() as session:
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
            if result.auth_state is not None and hub.crypt.enabled:
                user.auth_state = result.auth_state
            if result.user_info is not None:
                user.user_info = result.user_info
            await session.commit()
            return LoggedIn(user.id, user.name, user.cookie_id, user.admin)

    # simultaneous first logins of one user (or of two users bringing the same new group) race to insert
    out = await retry_unique(store)
    if created:
        await hub.hooks.user_created(UserInfo(name=out.name, admin=out.admin, id=out.user_id))
    log.info("user %s logged in", _safe(name))
    return out
