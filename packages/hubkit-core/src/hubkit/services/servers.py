"""User servers: load and authorise, the named-server rules, spawn options, start, stop, change and show.

One set of rules for the REST API and the pages: a server is found and authorised the same way, options are
validated by the spawner's own form rules whichever door they come through, and a server that is not stopped
cannot be started again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..auth.identity import Identity
from ..errors import BadRequest, Conflict, Forbidden, InvalidOptions, LimitReached, NotFound, SpawnFailed
from ..interfaces import OptionsForm, Phase, ProgressEvent, UserInfo
from ..spawn.progress import Item
from ..spawn.records import create_server
from ..storage.orm import Server, ServerStatus, Spawn, SpawnEvent
from . import access, userrows, views
from .access import HIDDEN
from .context import ServiceContext
from .names import check_name
from .userrows import ServerRow, UserRow
from .users import get_user, info, require_user

SLOW_SPAWN_TIMEOUT = 10.0  # how long a start request waits for "ready" before answering "pending"
PENDING_STATES = (ServerStatus.QUEUED, ServerStatus.STARTING)


@dataclass(frozen=True)
class ServerRef:
    """A user and one of their servers (``server`` is ``None`` when it has never been created)."""

    user: UserRow
    name: str
    server: ServerRow | None

    @property
    def owner(self) -> UserInfo:
        return info(self.user)

    @property
    def status(self) -> ServerStatus:
        return self.server.status if self.server is not None else ServerStatus.STOPPED

    @property
    def running(self) -> bool:
        return self.status == ServerStatus.RUNNING

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATES


def check_server_name(ctx: ServiceContext, server_name: str) -> None:
    if server_name:
        check_name(server_name, what="server name")
        try:
            ctx.policy.check_server_name(server_name)
        except LimitReached:
            raise BadRequest("Named servers are not enabled on this hub") from None


async def load(
    ctx: ServiceContext, caller: Identity, user_name: str, server_name: str, scopes: tuple[str, ...]
) -> ServerRef:
    """The server, if the caller may act on it with one of ``scopes`` (404 when it may not even see it)."""
    access.require(caller, scopes)
    check_server_name(ctx, server_name)
    user = await userrows.load_one(ctx.storage, user_name)
    if user is None:
        raise NotFound(HIDDEN)
    access.require(
        caller, scopes, user=user.name, server=server_name, user_groups=[g.name for g in user.groups]
    )
    server = next((s for s in user.servers if s.name == server_name), None)
    return ServerRef(user, server_name, server)


# ---- options ----------------------------------------------------------------------------------------------------


def options_form(ctx: ServiceContext, ref: ServerRef) -> OptionsForm | None:
    return ctx.spawner.options_form(ref.owner)


def spawn_options(ctx: ServiceContext, ref: ServerRef, submitted: Mapping[str, Any]) -> dict[str, Any]:
    """Options as the spawner's form rules accept them, so a bad profile or image is a 400 now rather than a
    failed spawn later. A spawner without a form takes options as given (as JupyterHub's REST API does)."""
    if ctx.spawner.options_form(ref.owner) is None:
        return dict(submitted)
    try:
        return dict(ctx.spawner.parse_options(ref.owner, submitted))
    except InvalidOptions as exc:
        raise InvalidOptions(f"Invalid spawn options: {exc}") from None


# ---- start and stop ----------------------------------------------------------------------------------------------


async def _status(ctx: ServiceContext, user_id: int, server_name: str) -> ServerStatus | None:
    async with ctx.storage.session() as session:
        return (
            await session.execute(
                select(Server.status).where(Server.user_id == user_id, Server.name == server_name)
            )
        ).scalar_one_or_none()


async def request_start(ctx: ServiceContext, ref: ServerRef, options: dict[str, Any] | None) -> int | None:
    """Queue a start; the spawn id, or ``None`` when a start of this server is already under way."""
    if ref.status in PENDING_STATES:
        return None
    if ref.status == ServerStatus.RUNNING:
        raise BadRequest(f"{ref.user.name}'s server {ref.name!r} is already running")
    if ref.status == ServerStatus.STOPPING:
        raise BadRequest(f"{ref.user.name}'s server {ref.name!r} is still stopping; try again shortly")
    try:
        return await ctx.spawns.request_start(ref.user.name, ref.name, options)
    except Conflict as exc:
        status = await _status(ctx, ref.user.id, ref.name)
        if status in PENDING_STATES:
            return None  # a concurrent identical request started it first
        if status == ServerStatus.RUNNING:  # ... and it is ready already: the same answer as above
            raise BadRequest(f"{ref.user.name}'s server {ref.name!r} is already running") from None
        raise BadRequest(str(exc)) from None


async def start(
    ctx: ServiceContext, ref: ServerRef, options: Mapping[str, Any] | None, *, display_name: str | None = None
) -> bool:
    """Start and wait up to :data:`SLOW_SPAWN_TIMEOUT`: ``True`` when ready, ``False`` while still pending.
    A spawn that failed in that time is :class:`~hubkit.errors.SpawnFailed` with the reason."""
    if ref.status in PENDING_STATES:
        return False
    validated = spawn_options(ctx, ref, options) if options else None
    spawn_id = await request_start(ctx, ref, validated)
    if spawn_id is None:
        return False
    if display_name is not None:
        async with ctx.storage.session() as session:
            row = (
                await session.execute(
                    select(Server).where(Server.user_id == ref.user.id, Server.name == ref.name)
                )
            ).scalar_one_or_none()
            if row is not None:
                row.display_name = display_name
                await session.commit()
    outcome = await ctx.spawns.wait(spawn_id, SLOW_SPAWN_TIMEOUT)
    if outcome == "failed":
        async with ctx.storage.session() as session:
            spawn = await session.get(Spawn, spawn_id)
            if spawn is None or spawn.reason_code == "cancelled":
                # stopped, or removed with its user, while it started: the state changed, the hub did not fail
                raise Conflict("the start was cancelled: the server was stopped or removed while it started")
            reason = spawn.message or "unknown reason"
        raise SpawnFailed(f"Spawn failed: {reason}")
    return outcome == "ready"


async def stop(ctx: ServiceContext, ref: ServerRef, *, remove: bool = False, reason: str = "") -> bool:
    """Stop (and with ``remove`` delete) a server: ``True`` when done, ``False`` while it still stops."""
    if remove and not ref.name:
        raise BadRequest("Cannot remove the default server")
    if ref.server is None:
        if ref.name:
            raise NotFound(f"{ref.user.name} has no server named {ref.name!r}")
        return True
    return await ctx.spawns.stop(ref.user.name, ref.name, remove=remove, reason=reason)


async def start_by_name(ctx: ServiceContext, user: str, server_name: str) -> None:
    """Queue a start on an admin's behalf (the admin page: ``admin-ui`` was checked)."""
    await ctx.spawns.request_start(user, server_name, None)


async def stop_by_name(ctx: ServiceContext, user: str, server_name: str, *, reason: str) -> None:
    await ctx.spawns.stop(user, server_name, reason=reason)


# ---- create and change -------------------------------------------------------------------------------------------


async def create_named(
    ctx: ServiceContext, ref: ServerRef, *, options: dict[str, Any] | None, display_name: str | None
) -> dict[str, Any]:
    if not ref.name:
        raise Conflict("The default server always exists")
    if ref.server is not None:
        raise Conflict(f"{ref.user.name} already has a server named {ref.name!r}")
    async with ctx.storage.session() as session:
        user = await require_user(session, ref.user.name)
        row = await create_server(
            session,
            ctx.policy,
            user.id,
            user.name,
            ref.name,
            display_name=display_name or "",
            user_options=options or {},
            activity={},
        )
        await session.commit()
        return views.server_model(ctx.urls, user.name, row)


@dataclass(frozen=True)
class ServerChanges:
    name: str | None = None
    display_name: str | None = None
    user_options: dict[str, Any] | None = None


async def change(ctx: ServiceContext, ref: ServerRef, changes: ServerChanges) -> dict[str, Any]:
    if ref.server is None:
        raise NotFound("No such server")
    async with ctx.storage.session() as session:
        row = await session.get(Server, ref.server.id)
        if row is None:
            raise NotFound("No such server")
        if changes.name is not None and changes.name != row.name:
            if row.status != ServerStatus.STOPPED:
                raise BadRequest("Stop the server before renaming it")
            if not row.name:
                raise BadRequest("The default server cannot be renamed")
            new = check_name(changes.name, what="server name")
            if any(s.name == new for s in ref.user.servers):
                raise Conflict(f"{ref.user.name} already has a server named {new!r}")
            row.name = new
        if changes.display_name is not None:
            row.display_name = changes.display_name
        if changes.user_options is not None:
            if row.status != ServerStatus.STOPPED:
                raise BadRequest("Stop the server before changing its options")
            row.user_options = changes.user_options
        await session.commit()
        return views.server_model(ctx.urls, ref.user.name, row)


# ---- show ------------------------------------------------------------------------------------------------------


def server_model(ctx: ServiceContext, caller: Identity, ref: ServerRef) -> dict[str, Any]:
    if ref.server is None:
        raise NotFound("No such server")
    state = access.may(caller, "admin:server_state", user=ref.user.name)
    return views.server_model(ctx.urls, ref.user.name, ref.server, with_state=state)


@dataclass(frozen=True)
class Progress:
    """What a progress stream of a server shows: ready at once, or the events of its latest spawn."""

    url: str
    ready: bool
    spawn_id: int | None


async def progress(ctx: ServiceContext, ref: ServerRef) -> Progress:
    if ref.server is None:
        raise NotFound("No such server")
    url = ctx.urls.server_url(ref.user.name, ref.name)
    if ref.server.status == ServerStatus.RUNNING:
        return Progress(url, True, None)
    spawn_id = await ctx.spawns.latest_spawn_id(ref.user.name, ref.name)
    if spawn_id is None:
        raise BadRequest(f"{ref.user.name}'s server {ref.name!r} is not starting")
    return Progress(url, False, spawn_id)


def events(ctx: ServiceContext, spawn_id: int) -> AsyncIterator[Item]:
    return ctx.spawns.events(spawn_id)


@dataclass(frozen=True)
class LatestSpawn:
    events: list[ProgressEvent]
    outcome: str | None
    message: str
    reason_code: str
    last_seq: int = 0  # the stored id of the last event (progress streams number their events with it)


async def latest_spawn(ctx: ServiceContext, ref: ServerRef) -> LatestSpawn | None:
    """The stored events and outcome of the server's latest spawn (the pending page, after a restart too)."""
    spawn_id = await ctx.spawns.latest_spawn_id(ref.user.name, ref.name)
    if spawn_id is None:
        return None
    async with ctx.storage.session() as session:
        spawn = await session.get(Spawn, spawn_id)
        rows = (
            await session.execute(
                select(SpawnEvent).where(SpawnEvent.spawn_id == spawn_id).order_by(SpawnEvent.id)
            )
        ).scalars()
        out = []
        last_seq = 0
        for r in rows:
            last_seq = r.id
            try:
                phase = Phase(r.phase)
            except ValueError:
                phase = Phase.STARTING
            out.append(ProgressEvent(phase, r.message, r.progress, r.reason_code, r.queue_position))
    if spawn is None:
        return None
    return LatestSpawn(out, spawn.outcome, spawn.message or "", spawn.reason_code or "", last_seq)


async def home_rows(ctx: ServiceContext, caller: Identity) -> tuple[UserInfo, list[dict[str, Any]]]:
    """The caller's servers for the home page, default first (shown even before it was ever started)."""
    async with ctx.storage.session() as session:
        user = await require_user(session, caller.name)
        servers = sorted(user.servers, key=lambda s: (s.name != "", s.name))
        rows = [views.server_row(ctx.urls, user.name, s.name, s) for s in servers]
        owner = info(user)
    if not any(r["name"] == "" for r in rows):
        rows.insert(0, views.server_row(ctx.urls, caller.name, "", None))
    return owner, rows


@dataclass(frozen=True)
class RouteMiss:
    """Why a ``/user/...`` request reached the hub instead of a server."""

    owner: str
    server_name: str
    visible: bool  # False: no such server (or user) the caller may see
    running: bool = False
    pending: bool = False


async def route_miss(ctx: ServiceContext, caller: Identity, owner: str, first: str) -> RouteMiss:
    """``first`` is the path segment after the user's name, which may name one of their servers."""
    check_name(owner)
    async with ctx.storage.session() as session:
        user = await get_user(session, owner)
        servers = {s.name: s for s in user.servers} if user is not None else {}
        groups = [g.name for g in user.groups] if user is not None else []
    server_name = first if first and first in servers else ""
    may = user is not None and (
        access.may(caller, "servers", user=owner, server=server_name, user_groups=groups)
        or access.may(caller, "access:servers", user=owner, server=server_name, user_groups=groups)
    )
    if not may:
        return RouteMiss(owner, server_name, False)
    status = servers[server_name].status if server_name in servers else ServerStatus.STOPPED
    return RouteMiss(owner, server_name, True, status == ServerStatus.RUNNING, status in PENDING_STATES)


async def may_stop(ctx: ServiceContext, caller: Identity, owner: str, server_name: str) -> ServerRef:
    """A stop or delete from a page: needs ``delete:servers`` on that server."""
    check_name(owner)
    user = await userrows.load_one(ctx.storage, owner)
    if user is None:
        raise NotFound(f"No such user: {owner}")
    groups = [g.name for g in user.groups]
    if not access.may(caller, "delete:servers", user=user.name, server=server_name, user_groups=groups):
        raise Forbidden("You may not stop this server.")
    server = next((s for s in user.servers if s.name == server_name), None)
    return ServerRef(user, server_name, server)


def form_options(ctx: ServiceContext, ref: ServerRef, submitted: Mapping[str, Any]) -> dict[str, Any]:
    """Options from the spawn page's form: parsed by the spawner when it has a form, else none."""
    if ctx.spawner.options_form(ref.owner) is None:
        return {}
    return dict(ctx.spawner.parse_options(ref.owner, submitted))
