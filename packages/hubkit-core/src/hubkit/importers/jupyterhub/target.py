"""The hubkit side of an import: what the database already holds, and applying a plan in one transaction.

Tokens are made with :func:`hubkit.auth.tokens.issue_token` like any other, with a throwaway random secret
nobody ever sees (so hubkit's own SHA-256 lookup can never match them); JupyterHub's hash goes beside them in
``jupyterhub_token_hashes``, where the prefix lookup of :mod:`hubkit.auth.jupyterhub_tokens` finds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ...auth.tokens import issue_token
from ...services.users import new_user
from ...storage.orm import Group, JupyterHubTokenHash, Server, ServerStatus, User, user_group
from .actions import (
    Action,
    AddMembers,
    CreateGroup,
    CreateServer,
    CreateUser,
    ImportToken,
    PromoteAdmin,
    SetGroupProperties,
    SetServerOptions,
    SetUserInfo,
)
from .plan import HubkitState

IMPORTED_FROM = "jupyterhub"


async def load_state(session: AsyncSession) -> HubkitState:
    users = {
        name: (admin, info)
        for name, admin, info in (await session.execute(select(User.name, User.admin, User.user_info))).all()
    }
    groups: dict[str, tuple[dict[str, object], set[str]]] = {
        name: (dict(props or {}), set())
        for name, props in (await session.execute(select(Group.name, Group.properties)))
    }
    member_rows = await session.execute(
        select(Group.name, User.name)
        .select_from(user_group)
        .join(Group, Group.id == user_group.c.group_id)
        .join(User, User.id == user_group.c.user_id)
    )
    for group, user in member_rows:
        groups[group][1].add(user)
    servers = {
        (user, name): dict(opts or {})
        for user, name, opts in await session.execute(
            select(User.name, Server.name, Server.user_options).join(User, User.id == Server.user_id)
        )
    }
    hashes = {
        hashed: token_id
        for hashed, token_id in await session.execute(
            select(JupyterHubTokenHash.hashed, JupyterHubTokenHash.token_id)
        )
    }
    return HubkitState(users=users, groups=groups, servers=servers, token_hashes=hashes)


async def apply(session: AsyncSession, actions: Sequence[Action]) -> None:
    """Apply ``actions`` (in plan order: users, groups, servers, tokens) and commit once."""
    user_ids: dict[str, int] = {}
    group_ids: dict[str, int] = {}

    async def user_id(name: str) -> int:
        if name not in user_ids:
            user_ids[name] = (await session.execute(select(User.id).where(User.name == name))).scalar_one()
        return user_ids[name]

    async def group_id(name: str) -> int:
        if name not in group_ids:
            group_ids[name] = (await session.execute(select(Group.id).where(Group.name == name))).scalar_one()
        return group_ids[name]

    for action in actions:
        if isinstance(action, CreateUser):
            user = new_user(action.name, admin=action.admin)
            if action.created is not None:
                user.created = action.created
            user.last_activity = action.last_activity
            user.user_info = action.user_info
            session.add(user)
            await session.flush()
            user_ids[action.name] = user.id
        elif isinstance(action, PromoteAdmin):
            await session.execute(update(User).where(User.name == action.name).values(admin=True))
        elif isinstance(action, SetUserInfo):
            await session.execute(
                update(User).where(User.name == action.name).values(user_info=action.user_info)
            )
        elif isinstance(action, CreateGroup):
            group = Group(name=action.name, properties=action.properties)
            session.add(group)
            await session.flush()
            group_ids[action.name] = group.id
        elif isinstance(action, SetGroupProperties):
            await session.execute(
                update(Group).where(Group.name == action.name).values(properties=action.properties)
            )
        elif isinstance(action, AddMembers):
            gid = await group_id(action.group)
            rows = [{"user_id": await user_id(u), "group_id": gid} for u in action.users]
            await session.execute(insert(user_group), rows)
        elif isinstance(action, CreateServer):
            session.add(
                Server(
                    user_id=await user_id(action.user),
                    name=action.name,
                    display_name=action.display_name,
                    status=ServerStatus.STOPPED,
                    user_options=action.user_options,
                    state={},
                    activity={},
                )
            )
        elif isinstance(action, SetServerOptions):
            await session.execute(
                update(Server)
                .where(Server.user_id == await user_id(action.user), Server.name == action.name)
                .values(user_options=action.user_options)
            )
        elif isinstance(action, ImportToken):
            await _import_token(session, await user_id(action.user), action)
    await session.commit()


async def _import_token(session: AsyncSession, owner: int, action: ImportToken) -> None:
    _secret, token = await issue_token(
        session,
        user_id=owner,
        scopes=list(action.scopes),
        note=action.note,
        secret=secrets.token_hex(32),  # never shown, never matched: JupyterHub's hash is what identifies it
    )
    token.prefix = action.prefix[:8]
    if action.created is not None:
        token.created = action.created
    token.expires_at = action.expires_at
    token.last_activity = action.last_activity
    token.extra = {"imported_from": IMPORTED_FROM, "jupyterhub_id": action.jupyterhub_id}
    session.add(JupyterHubTokenHash(token_id=token.id, prefix=action.prefix, hashed=action.hashed))
    await session.flush()
