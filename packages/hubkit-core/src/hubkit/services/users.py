"""Create, rename and delete users and groups; the one place that knows the naming rules.

Deleting a user stops their servers through the spawn engine first, so no process or route is orphaned.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import Conflict, HubkitError, NotFound
from ..interfaces import UserInfo
from ..storage.orm import APIToken, Group, ServerStatus, User

if TYPE_CHECKING:
    from ..runtime.hub import Hub

MAX_NAME = 255
# no slashes, backslashes, URL metacharacters, whitespace or control characters
_NAME_RE = re.compile(r"^[^\x00-\x20\x7f-\x9f/\\?#%&\"'<>`]+$")


# Unicode spaces, line/paragraph separators, control and format characters (zero-width space, BOM, U+202E),
# private-use, surrogate and unassigned code points: invisible or unstable in a name.
_REFUSED_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs", "Cn"}


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): code points that render as nothing. Many
# are format characters (refused by category above), but some are letters or marks (the Hangul fillers, variation
# selectors, U+034F), which NFKC keeps. U+2800 BRAILLE PATTERN BLANK is not ignorable but shows as a blank.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def _invisible(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE)


class InvalidName(HubkitError):
    """A user, group or server name that could not appear safely in a URL path."""


def _char(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '(unnamed)')}"


def check_name(name: object, *, what: str = "user name") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidName(f"{what} is longer than {MAX_NAME} characters")
    if name in (".", "..") or name.startswith(".") or not _NAME_RE.match(name):
        raise InvalidName(
            f"invalid {what} {name[:64]!r}: no slashes, spaces, control characters, URL metacharacters "
            "or leading dot"
        )
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch == "\ufffd" or _invisible(ch):
            raise InvalidName(f"invalid {what}: it contains {_char(ch)}, an invisible or unusable character")
    if unicodedata.normalize("NFKC", name) != unicodedata.normalize("NFC", name):
        odd = next(c for c in name if unicodedata.normalize("NFKC", c) != c)
        raise InvalidName(
            f"invalid {what}: {_char(odd)} is a compatibility form of another character (full-width letters, "
            "ligatures, superscripts...): names made of them would look like other names"
        )
    return name


def canonical_name(name: str, *, lower: bool = True) -> str:
    """NFC (so ``e`` + combining acute and ``é`` are one name) and, by default, lower case (as JupyterHub's
    ``normalize_username``), then the rules of :func:`check_name`: look-alike names cannot coexist."""
    name = unicodedata.normalize("NFC", name.strip())
    if lower:
        name = unicodedata.normalize("NFC", name.lower())
    return check_name(name)


async def normalize(hub: Hub, raw: str) -> str:
    """A user name as typed or as an identity provider sent it, made canonical: plugins first (e.g. map an
    e-mail address to an account), then the core's rule (``[auth] normalize_usernames``)."""
    name = await hub.hooks.normalize_username(raw)
    return canonical_name(name, lower=hub.settings.auth.normalize_usernames)


def info(user: User) -> UserInfo:
    return UserInfo(name=user.name, admin=user.admin, groups=tuple(g.name for g in user.groups), id=user.id)


async def get_user(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()


async def require_user(session: AsyncSession, name: str) -> User:
    user = await get_user(session, name)
    if user is None:
        raise NotFound(f"No such user: {name}")
    return user


def new_user(name: str, *, admin: bool = False) -> User:
    return User(name=check_name(name), admin=admin, cookie_id=secrets.token_hex(16), servers=[], groups=[])


async def create_users(
    hub: Hub, session: AsyncSession, names: Iterable[str], *, admin: bool = False
) -> list[User]:
    """Create the given users (existing ones skipped); fires ``hubkit_user_created`` after commit."""
    wanted = []
    for n in names:
        n = await normalize(hub, check_name(n))
        if n not in wanted:
            wanted.append(n)
    for attempt in range(3):  # a concurrent create of one of these names makes us re-read and skip it
        existing = set((await session.execute(select(User.name).where(User.name.in_(wanted)))).scalars())
        created = [new_user(n, admin=admin) for n in wanted if n not in existing]
        session.add_all(created)
        try:
            await session.commit()
            break
        except IntegrityError:
            await session.rollback()
            if attempt == 2:
                raise
    for u in created:
        await hub.hooks.user_created(UserInfo(name=u.name, admin=u.admin, id=u.id))
    return created


async def rename_user(session: AsyncSession, user: User, new_name: str) -> None:
    check_name(new_name)
    if new_name == user.name:
        return
    if await get_user(session, new_name) is not None:
        raise Conflict(f"User {new_name} already exists")
    if any(s.status != ServerStatus.STOPPED for s in user.servers):
        raise Conflict(f"Stop {user.name}'s servers before renaming")
    user.name = new_name


async def stop_all_servers(hub: Hub, name: str, *, remove: bool, reason: str) -> bool:
    """Stop every server of ``name``; ``True`` when all are stopped."""
    async with hub.db() as session:
        user = await require_user(session, name)
        servers = [(s.name, s.status) for s in user.servers]
    done = True
    for server_name, status in servers:
        if status == ServerStatus.STOPPED and not (remove and server_name):
            continue
        done = (
            await hub.spawns.stop(name, server_name, remove=remove and bool(server_name), reason=reason)
            and done
        )
    return done


async def delete_user(hub: Hub, name: str, *, reason: str = "user deleted") -> None:
    if not await stop_all_servers(hub, name, remove=True, reason=reason):
        raise Conflict(f"{name}'s servers are still stopping; try again shortly")
    async with hub.db() as session:
        user = await require_user(session, name)
        uinfo = info(user)
        await session.execute(delete(APIToken).where(APIToken.user_id == user.id))
        await session.delete(user)
        await session.commit()
    await hub.hooks.user_deleted(uinfo)


async def revoke_all_tokens(session: AsyncSession, user: User) -> int:
    """Delete every API and OAuth token of a user and end their browser sessions (server tokens survive)."""
    res = await session.execute(
        delete(APIToken).where(APIToken.user_id == user.id, APIToken.kind != "server")
    )
    user.cookie_id = secrets.token_hex(16)
    return int(getattr(res, "rowcount", 0) or 0)


# ---- groups -----------------------------------------------------------------------------------------------


async def get_group(session: AsyncSession, name: str) -> Group | None:
    return (await session.execute(select(Group).where(Group.name == name))).scalar_one_or_none()


async def require_group(session: AsyncSession, name: str) -> Group:
    group = await get_group(session, name)
    if group is None:
        raise NotFound(f"No such group: {name}")
    return group


async def users_by_name(session: AsyncSession, names: Iterable[Any]) -> list[User]:
    wanted = [check_name(n) for n in names]
    found = list((await session.execute(select(User).where(User.name.in_(wanted)))).scalars())
    missing = set(wanted) - {u.name for u in found}
    if missing:
        raise NotFound(f"No such user(s): {', '.join(sorted(missing))}")
    return found


async def create_group(session: AsyncSession, name: str, members: Iterable[str] = ()) -> Group:
    check_name(name, what="group name")
    if await get_group(session, name) is not None:
        raise Conflict(f"Group {name} already exists")
    users = await users_by_name(session, members)
    group = Group(name=name, properties={}, users=users)
    session.add(group)
    return group


def add_members(group: Group, users: Iterable[User]) -> None:
    have = {u.id for u in group.users}
    for u in users:
        if u.id not in have:
            group.users.append(u)
            have.add(u.id)


def remove_members(group: Group, users: Iterable[User]) -> None:
    drop = {u.id for u in users}
    group.users = [u for u in group.users if u.id not in drop]
