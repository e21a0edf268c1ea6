"""Who may log in to a hub service: ``access:services!service=<name>`` for the users its ``access`` policy
names (``[[services]]`` ``access_all_users``, ``access_users``, ``access_groups``), besides admins, whose role
holds ``access:services``. JupyterHub grants the same scope through roles.

Only the places that check that scope ask (the OAuth authorize step, tokens issued to a service's client), so
ordinary requests pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..storage.orm import Service
from . import scopes as sc


def access_scope(name: str) -> str:
    """What a user needs to log in to the service."""
    return f"access:services!service={name}"


def wants_service_access(scopes: Iterable[str]) -> bool:
    return any(sc.parse(s)[0] == "access:services" for s in scopes)


async def granted(session: AsyncSession, user: str, groups: Iterable[str]) -> list[str]:
    """The services this user may log in to, as scopes."""
    member_of = set(groups)
    out: list[str] = []
    for name, access in await session.execute(select(Service.name, Service.access)):
        policy = access or {}
        if (
            policy.get("all")
            or user in (policy.get("users") or [])
            or member_of & set(policy.get("groups") or [])
        ):
            out.append(access_scope(name))
    return out


def with_grants(owner: sc.Scopes, grants: Iterable[str], user: str) -> sc.Scopes:
    """``owner`` plus the service access ``grants``."""
    extra = sc.expand(list(grants), owner=user)
    merged = {k: set(v) for k, v in owner.items()}
    for name, filters in extra.items():
        bucket = merged.setdefault(name, set())
        if sc.ALL not in bucket:
            bucket |= filters
    return merged
