"""One spawn from queue to ready (or to a clean failure), one stop, and the shared teardown.

Order matters for restart safety: ``status=starting`` and the server's credentials are committed before the
backend's ``start``; the backend saves its own state through :class:`Ctx` before it creates anything; the
route is added before ``running`` is written. On failure everything is undone *before* the ``failed``
event is published, so whoever sees that event also sees nothing left running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import noload

from ..errors import PluginError, SpawnFailed, SpawnTimeout
from ..interfaces import (
    Endpoint,
    ExitStatus,
    JSONDict,
    Phase,
    ProgressEvent,
    ServerSpec,
    UserInfo,
)
from ..routing.reconcile import server_route
from ..storage.orm import Group, Server, ServerStatus, Spawn, User, user_group
from .auth_refresh import refresh_before_spawn
from .env import build_env, issue_server_credentials, merged_env, revoke_server_credentials, server_prefix
from .readiness import wait_http

if TYPE_CHECKING:
    from .engine import SpawnEngine

log = logging.getLogger("hubkit.spawn")


def _now() -> datetime:
    return datetime.now(UTC)


class Ctx:
    """The :class:`hubkit.interfaces.SpawnContext` handed to a backend's ``start``."""

    def __init__(self, engine: SpawnEngine, spawn_id: int, server_id: int) -> None:
        self.engine = engine
        self.spawn_id = spawn_id
        self.server_id = server_id
        self.state: JSONDict = {}

    async def emit(self, event: ProgressEvent) -> None:
        if event.phase in (Phase.READY, Phase.FAILED):
            raise ValueError("backends report failure by raising SpawnFailed; readiness is the core's job")
        await self.engine.progress.emit(self.spawn_id, event)

    async def save_state(self, state: JSONDict) -> None:
        self.state = dict(state)
        async with self.engine.tx() as s:
            await s.execute(
                update(Server)
                .where(Server.id == self.server_id)
                .values(state=self.state)
                .execution_options(synchronize_session=False)
            )
            await s.commit()


@dataclass(frozen=True)
class Owner:
    id: int
    name: str
    admin: bool
    groups: tuple[str, ...] = ()


def spec_for(
    engine: SpawnEngine, srv: Server, owner: Owner, *, token: str = "", env: dict[str, str] | None = None
) -> ServerSpec:
    return ServerSpec(
        user=UserInfo(name=owner.name, admin=owner.admin, groups=owner.groups, id=owner.id),
        server_name=srv.name,
        server_id=srv.id,
        url_prefix=server_prefix(engine.urls.base_url, owner.name, srv.name),
        hub_api_url=engine.urls.hub_api_url,
        env=env or {},
        cmd=tuple(engine.config.cmd),
        args=tuple(engine.config.args),
        user_options=dict(srv.user_options or {}),
        api_token=token,
        hub_id=engine.hub_id,
    )


async def group_names(s: AsyncSession, user_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    ids = list(set(user_ids))
    out: dict[int, list[str]] = {}
    for i in range(0, len(ids), 500):
        rows = await s.execute(
            select(user_group.c.user_id, Group.name)
            .join(Group, user_group.c.group_id == Group.id)
            .where(user_group.c.user_id.in_(ids[i : i + 500]))
        )
        for uid, name in rows:
            out.setdefault(uid, []).append(name)
    return {uid: tuple(sorted(names)) for uid, names in out.items()}


def servers_with_owners() -> Select[Server, int, str, bool]:  # type: ignore[type-arg,unused-ignore]
    """Server rows with their owner's id/name/admin in one query (no relationship loading)."""
    return (
        select(Server, User.id, User.name, User.admin)
        .join(User, User.id == Server.user_id)
        .options(noload(Server.user))
    )


async def _load(s: AsyncSession, server_id: int) -> tuple[Server, Owner]:
    row = (await s.execute(servers_with_owners().where(Server.id == server_id))).one_or_none()
    if row is None:
        raise LookupError(server_id)
    srv, uid, name, admin = row
    groups = (await group_names(s, [uid])).get(uid, ())
    return srv, Owner(uid, name, admin, groups)


async def load_spec(engine: SpawnEngine, server_id: int) -> tuple[ServerSpec, Server]:
    """The spec of a stored server (for poll/stop: no fresh credentials) and its row."""
    async with engine.db() as s:
        srv, owner = await _load(s, server_id)
        return spec_for(engine, srv, owner), srv


async def _begin(engine: SpawnEngine, spawn_id: int, server_id: int) -> ServerSpec:
    """Write ``starting`` + fresh credentials in one transaction, then build the spec."""
    async with engine.tx() as s:
        srv, owner = await _load(s, server_id)
        prefix = server_prefix(engine.urls.base_url, owner.name, srv.name)
        token = await issue_server_credentials(
            s, user_id=owner.id, server_id=srv.id, user=owner.name, server_name=srv.name, prefix=prefix
        )
        srv.status = ServerStatus.STARTING
        srv.state = {}
        srv.url = None
        event = ProgressEvent(Phase.STARTING, "Starting server", progress=10)
        row = engine.progress.add(s, spawn_id, event)
        await s.commit()
    engine.progress.publish(spawn_id, row.id, event)
    env = merged_env(build_env(engine.urls, owner.name, srv.name, token), engine.config.environment)
    return spec_for(engine, srv, owner, token=token, env=env)


async def _watch_exit(engine: SpawnEngine, spec: ServerSpec, state: JSONDict) -> ExitStatus:
    delay = 0.05
    while True:
        status = await engine.backend.poll(spec, state)
        if status is not None:
            return status
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _await_ready(engine: SpawnEngine, spec: ServerSpec, state: JSONDict, url: str) -> None:
    check = f"{url.rstrip('/')}{spec.url_prefix}api"
    ready = asyncio.ensure_future(wait_http(engine.http, check))
    died = asyncio.ensure_future(_watch_exit(engine, spec, state))
    try:
        done, _ = await asyncio.wait(
            {ready, died}, timeout=engine.config.http_timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        ready.cancel()
        died.cancel()
    if ready in done:
        return
    if died in done:
        status = died.result()
        reason = status.reason or (f"exit code {status.code}" if status.code is not None else "it exited")
        raise SpawnFailed(
            f"the server exited before it answered HTTP: {reason}", reason_code=status.reason_code or "exited"
        )
    raise SpawnTimeout(
        f"the server did not answer {check} within {engine.config.http_timeout:g} s", phase="http"
    )


async def run_spawn(engine: SpawnEngine, spawn_id: int, server_id: int) -> None:
    async def on_position(pos: int) -> None:
        await engine.progress.emit(
            spawn_id,
            ProgressEvent(
                Phase.QUEUED,
                f"Waiting for a free slot: position {pos} in the queue",
                progress=0,
                queue_position=pos,
            ),
        )

    spec: ServerSpec | None = None
    ctx = Ctx(engine, spawn_id, server_id)
    started = False
    try:
        async with engine.queue.slot(on_position):
            spec = await _begin(engine, spawn_id, server_id)
            await refresh_before_spawn(engine, spec)
            spec = await engine.hooks.pre_spawn(spec)
            started = True
            try:
                async with asyncio.timeout(engine.config.start_timeout):
                    result = await engine.backend.start(spec, ctx)
            except TimeoutError:
                raise SpawnTimeout(
                    f"the spawner did not start the server within {engine.config.start_timeout:g} s",
                    phase="start",
                ) from None
            ctx.state = dict(result.state)
            await _save_endpoint(engine, spawn_id, server_id, result.state, result.endpoint)
            await _await_ready(engine, spec, ctx.state, result.endpoint.url)
            await engine.routes.add(
                server_route(
                    spec.url_prefix, result.endpoint.url, spec.user.name, spec.server_name, engine.hub_id
                )
            )
            await _mark_running(engine, spawn_id, server_id, spec)
        engine.record_outcome(True)
        await engine.hooks.server_ready(spec, result.endpoint)
        engine.finish(spawn_id, "ready")
    except asyncio.CancelledError:
        if not engine._closing:
            await asyncio.shield(
                _fail(engine, spawn_id, server_id, spec, ctx, started, "cancelled", "the spawn was cancelled")
            )
        raise
    except Exception as exc:
        code, message = _reason(exc)
        log.warning("spawn %s failed (%s): %s", spawn_id, code, message)
        await _fail(engine, spawn_id, server_id, spec, ctx, started, code, message)


def _reason(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, SpawnFailed):
        return exc.reason_code, str(exc)
    if isinstance(exc, PluginError):
        return "plugin-error", str(exc)
    return "backend-error", f"{type(exc).__name__}: {exc}"


async def _save_endpoint(
    engine: SpawnEngine, spawn_id: int, server_id: int, state: JSONDict, endpoint: Endpoint
) -> None:
    async with engine.tx() as s:
        await s.execute(
            update(Server)
            .where(Server.id == server_id)
            .values(state=dict(state), url=endpoint.url)
            .execution_options(synchronize_session=False)
        )
        event = ProgressEvent(Phase.WAITING_HTTP, "Server started; waiting for it to answer", progress=60)
        row = engine.progress.add(s, spawn_id, event)
        await s.commit()
    engine.progress.publish(spawn_id, row.id, event)


async def _mark_running(engine: SpawnEngine, spawn_id: int, server_id: int, spec: ServerSpec) -> None:
    now = _now()
    async with engine.tx() as s:
        await s.execute(
            update(Server)
            .where(Server.id == server_id)
            .values(status=ServerStatus.RUNNING, started=now, last_activity=now)
            .execution_options(synchronize_session=False)
        )
        await s.execute(update(User).where(User.id == spec.user.id).values(spawn_failures=0))
        await s.execute(
            update(Spawn).where(Spawn.id == spawn_id).values(outcome="ready", finished=now, message="")
        )
        event = ProgressEvent(
            Phase.READY, f"Server ready at {spec.url_prefix}", progress=100, detail={"url": spec.url_prefix}
        )
        row = engine.progress.add(s, spawn_id, event)
        await s.commit()
    engine.progress.publish(spawn_id, row.id, event)


async def _fail(
    engine: SpawnEngine,
    spawn_id: int,
    server_id: int,
    spec: ServerSpec | None,
    ctx: Ctx,
    started: bool,
    code: str,
    message: str,
) -> None:
    """Undo everything, then record and publish the failure."""
    tail: list[str] = []
    if started and spec is not None:
        state = await _stored_state(engine, server_id) or ctx.state
        try:
            async with asyncio.timeout(5):
                tail = await engine.backend.log_tail(spec, state, 20)
        except Exception:
            tail = []
        await teardown(engine, server_id, spec, state, stop_backend=True)
    else:
        await teardown(engine, server_id, spec, {}, stop_backend=False)
    engine.record_outcome(False)
    async with engine.tx() as s:
        await s.execute(
            update(Spawn)
            .where(Spawn.id == spawn_id)
            .values(
                outcome="cancelled" if code == "cancelled" else "failed",
                reason_code=code,
                message=message,
                finished=_now(),
            )
        )
        if spec is not None and spec.user.id is not None:
            await s.execute(
                update(User).where(User.id == spec.user.id).values(spawn_failures=User.spawn_failures + 1)
            )
        event = ProgressEvent(
            Phase.FAILED,
            f"Spawn failed: {message}",
            progress=100,
            reason_code=code,
            detail={"log_tail": tail} if tail else {},
        )
        row = engine.progress.add(s, spawn_id, event)
        await s.commit()
    engine.progress.publish(spawn_id, row.id, event)
    engine.finish(spawn_id, "failed")


async def _stored_state(engine: SpawnEngine, server_id: int) -> JSONDict:
    async with engine.db() as s:
        state = (await s.execute(select(Server.state).where(Server.id == server_id))).scalar_one_or_none()
    return dict(state or {})


async def teardown(
    engine: SpawnEngine,
    server_id: int,
    spec: ServerSpec | None,
    state: JSONDict,
    *,
    stop_backend: bool,
    remove: bool = False,
) -> None:
    """Route out, backend stopped, credentials revoked, row reset (or deleted). Errors are logged, not raised:
    a half-torn-down server is worse than a logged failure."""
    if spec is not None:
        try:
            await engine.routes.remove(spec.url_prefix)
        except Exception:
            log.exception("removing route %s", spec.url_prefix)
        if stop_backend:
            await _stop_backend(engine, spec, state)
    async with engine.tx() as s:
        await revoke_server_credentials(s, server_id)
        if remove:
            await s.execute(delete(Server).where(Server.id == server_id))
        else:
            await s.execute(
                update(Server)
                .where(Server.id == server_id)
                .values(status=ServerStatus.STOPPED, state={}, url=None)
                .execution_options(synchronize_session=False)
            )
        await s.commit()


async def _stop_backend(engine: SpawnEngine, spec: ServerSpec, state: JSONDict) -> None:
    timeout = engine.config.stop_timeout
    for now in (False, True):
        try:
            async with asyncio.timeout(timeout):
                await engine.backend.stop(spec, state, now=now)
            return
        except TimeoutError:
            log.warning("stopping %s took over %g s%s", spec.full_name, timeout, "" if now else "; forcing")
        except Exception:
            log.exception("stopping %s failed", spec.full_name)
            if now:
                return


async def stop_server(engine: SpawnEngine, server_id: int, *, remove: bool, reason: str) -> None:
    await engine.cancel_spawn(server_id)
    try:
        spec, srv = await load_spec(engine, server_id)
    except LookupError:
        return
    if srv.status == ServerStatus.STOPPED:
        if remove:
            await teardown(engine, server_id, None, {}, stop_backend=False, remove=True)
        return
    async with engine.tx() as s:
        await s.execute(
            update(Server)
            .where(Server.id == server_id)
            .values(status=ServerStatus.STOPPING)
            .execution_options(synchronize_session=False)
        )
        await s.commit()
    await teardown(engine, server_id, spec, dict(srv.state or {}), stop_backend=True, remove=remove)
    log.info("stopped %s%s", spec.full_name, f" ({reason})" if reason else "")
    await engine.hooks.post_stop(spec, None)


async def handle_dead(engine: SpawnEngine, server_id: int, status: ExitStatus) -> None:
    """A server the poller (or adoption) found gone: route out, clean up, tell plugins how it ended."""
    try:
        spec, srv = await load_spec(engine, server_id)
    except LookupError:
        return
    log.warning("server %s is gone: %s", spec.full_name, status.reason or status.reason_code)
    await teardown(engine, server_id, spec, dict(srv.state or {}), stop_backend=True)
    await engine.hooks.post_stop(spec, status)
