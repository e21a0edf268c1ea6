"""Hub services (JupyterHub's notion: an external culler, a dashboard) and their API models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import grants, service_access
from ..auth import scopes as sc
from ..auth.identity import Identity
from ..config.models import service_url
from ..errors import BadRequest, Conflict, Forbidden, NotAllowed, NotFound
from ..storage.orm import Service
from . import access, views
from .access import HIDDEN
from .context import ServiceContext
from .names import check_name


async def list_services(ctx: ServiceContext, caller: Identity) -> dict[str, dict[str, Any]]:
    access.require(caller, ("list:services", "read:services:name"))
    async with ctx.storage.session() as session:
        rows = (await session.execute(select(Service).order_by(Service.name))).scalars()
        return {
            s.name: views.service_model(ctx.urls, s, caller)
            for s in rows
            if access.may(caller, "list:services", service=s.name)
            or access.may(caller, "read:services:name", service=s.name)
        }


async def links_for(ctx: ServiceContext, caller: Identity) -> list[dict[str, str]]:
    """The services the home page lists for this user: those with a URL, shown (``display``), and that the user
    may log in to (JupyterHub lists the same ones)."""
    async with ctx.storage.session() as session:
        rows = (
            await session.execute(
                select(Service.name).where(Service.url != "", Service.display).order_by(Service.name)
            )
        ).scalars()
        names = list(rows)
        if not names:
            return []
        scopes = service_access.with_grants(
            caller.scopes, await service_access.granted(session, caller.name, caller.groups), caller.name
        )
    return [
        {"name": n, "url": ctx.urls.service_url(n)}
        for n in names
        if sc.allows(scopes, "access:services", service=n)
    ]


async def _visible(session: AsyncSession, caller: Identity, names: tuple[str, ...], name: str) -> Service:
    access.require(caller, names)
    row = (await session.execute(select(Service).where(Service.name == name))).scalar_one_or_none()
    if row is None:
        raise NotFound(HIDDEN)
    access.require(caller, names, service=row.name)
    return row


async def service_model(ctx: ServiceContext, caller: Identity, name: str) -> dict[str, Any]:
    async with ctx.storage.session() as session:
        row = await _visible(
            session, caller, ("read:services", "read:services:name", "read:roles:services"), name
        )
        return views.service_model(ctx.urls, row, caller)


async def create_service(
    ctx: ServiceContext, caller: Identity, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    access.require(caller, ("admin:services",))
    name = check_name(name, what="service name")
    scopes = body.get("scopes", [])
    if not isinstance(scopes, list):
        raise BadRequest("scopes must be a list")
    sc.validate(scopes)
    for key, typ in (("admin", bool), ("url", str), ("display", bool), ("info", dict)):
        if key in body and not isinstance(body[key], typ):
            raise BadRequest(f"{key} has the wrong type")
    try:
        url = service_url(body.get("url")) or ""
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    # a service holds what it is given: never more than the caller who creates it
    wanted = sc.owner_scopes(name, admin=bool(body.get("admin")), kind="service", extra=scopes)
    if not grants.covers(caller.scopes, wanted):
        raise Forbidden("Cannot create a service with more permissions than the caller holds")
    async with ctx.storage.session() as session:
        if (await session.execute(select(Service).where(Service.name == name))).scalar_one_or_none():
            raise Conflict(f"Service {name} already exists")
        row = Service(
            name=name,
            admin=body.get("admin", False),
            url=url,
            display=body.get("display", True),
            info=body.get("info", {}),
            scopes=scopes,
            from_config=False,
        )
        session.add(row)
        await session.commit()
        return views.service_model(ctx.urls, row)


async def delete_service(ctx: ServiceContext, caller: Identity, name: str) -> None:
    async with ctx.storage.session() as session:
        row = await _visible(session, caller, ("admin:services",), name)
        if row.from_config:
            raise NotAllowed("Services defined in the configuration cannot be deleted through the API")
        await session.delete(row)
        await session.commit()
