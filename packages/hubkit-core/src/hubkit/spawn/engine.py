"""The spawn engine: request a start, run its phases, stop, wait, read progress.

A start goes through its phases in this module: requested (row ``queued``) → admitted by the queue →
``starting`` with fresh credentials → credentials refreshed, ``hubkit_pre_spawn`` → the backend's ``start`` →
address saved → readiness → route added → ``running``. Every transition is written to the database before
anything external happens, so a hub killed at any point can be restarted and finish or undo what was in flight
(:mod:`.adopt`). The backend saves its own state through :class:`BackendContext` before it creates anything.
On failure everything is undone (:mod:`.stopping`) *before* the ``failed`` event is published, so whoever sees
that event also sees nothing left running. Spawns run as tasks of this process (:mod:`.inflight`); the web
layer only ever sees spawn ids and progress events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..errors import Conflict, LimitReached, NotFound, PluginError, SpawnFailed, SpawnTimeout
from ..interfaces import Endpoint, ExitStatus, JSONDict, Phase, ProgressEvent, ServerSpec
from ..routing.reconcile import server_route
from ..storage.access import Storage
from ..storage.orm import Server, ServerStatus, Spawn, User
from ..storage.races import claim_user
from ..storage.reads import Query
from . import statements as sql
from .auth_refresh import refresh_before_spawn
from .context import Spawning
from .credentials import issue_server_credentials
from .env import build_env, merged_env
from .guard import FailureGuard
from .inflight import InFlight
from .owners import Owners, OwnershipLost, SoleOwner
from .parts import SpawnParts, SpawnPolicy
from .progress import Item, ProgressStore
from .queue import Admission, AdmissionQueue
from .readiness import wait_http
from .records import Owner, insert_server, load, spec_for, stored_state
from .stopping import stop_backend_of, stop_server, teardown

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("hubkit.spawn")

ACTIVE = (ServerStatus.QUEUED, ServerStatus.STARTING, ServerStatus.RUNNING)
# a user's id and their server named :server (None when it does not exist), for a stop
SERVER_OF_USER = Query(sql.USER_AND_SERVER)


def _now() -> datetime:
    return datetime.now(UTC)


class BackendContext:
    """The :class:`hubkit.interfaces.SpawnContext` handed to a backend's ``start``."""

    def __init__(self, sp: Spawning, spawn_id: int, server_id: int) -> None:
        self.sp = sp
        self.spawn_id = spawn_id
        self.server_id = server_id
        self.state: JSONDict = {}

    async def emit(self, event: ProgressEvent) -> None:
        if event.phase in (Phase.READY, Phase.FAILED):
            raise ValueError("backends report failure by raising SpawnFailed; readiness is the core's job")
        await self.sp.emit(self.spawn_id, event)

    async def save_state(self, state: JSONDict) -> None:
        self.state = dict(state)
        async with self.sp.storage.tx() as s:
            await owned_write(s, self.sp, sql.STATE, {"server_id": self.server_id, "p_state": self.state})
            await s.commit()


class SpawnEngine:
    def __init__(
        self,
        policy: SpawnPolicy,
        storage: Storage,
        parts: SpawnParts,
        *,
        admission: Admission | None = None,
        owners: Owners | None = None,
    ) -> None:
        self.policy = policy
        self.inflight = InFlight()
        self.queue = admission or AdmissionQueue(policy.config.concurrent_spawn_limit)
        self.sp = Spawning(
            policy=policy,
            storage=storage,
            parts=parts,
            admission=self.queue,
            progress=ProgressStore(storage, self.inflight.is_live),
            guard=FailureGuard(policy.config.consecutive_failure_limit),
            inflight=self.inflight,
            owners=owners or SoleOwner(),
        )
        self.progress = self.sp.progress
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The readiness-check client, created on first use (httpx costs ~0.25 s to import at start)."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=0)
            )
        return self._http

    # ---------------------------------------------------------------------------------------------- queries

    def busy(self, server_id: int) -> bool:
        return self.inflight.busy(server_id)

    async def latest_spawn_id(self, user: str, server_name: str = "") -> int | None:
        async with self.sp.storage.session() as s:
            return (
                await s.execute(
                    select(Server.current_spawn_id)
                    .join(User, User.id == Server.user_id)
                    .where(User.name == user, Server.name == server_name)
                )
            ).scalar_one_or_none()

    def events(self, spawn_id: int, *, after: int = 0) -> AsyncIterator[Item]:
        return self.progress.events(spawn_id, after=after)

    async def wait(self, spawn_id: int, timeout: float) -> str | None:  # noqa: ASYNC109 (the agreed API)
        """``ready``/``failed`` once the spawn ended, ``None`` if it is still running after ``timeout``."""
        try:
            return await self.inflight.outcome(spawn_id, timeout)
        except KeyError:
            pass
        async with self.sp.storage.session() as s:
            spawn = await s.get(Spawn, spawn_id)
            if spawn is None:
                raise NotFound(f"no spawn {spawn_id}")
            if spawn.outcome is None:
                return None
            return "ready" if spawn.outcome == "ready" else "failed"

    # ---------------------------------------------------------------------------------------------- request

    async def request_start(
        self, user: str, server_name: str = "", user_options: dict[str, Any] | None = None
    ) -> int:
        """Queue a start and return its spawn id at once.

        Raises :class:`NotFound` (no such user), :class:`Conflict` (the server is not stopped, or the hub is
        shutting down) and :class:`LimitReached` (named servers off or over their limit, the hub's active-server
        limit, or spawning paused by the failure guard)."""
        if self.inflight.closing:
            raise Conflict("the hub is shutting down")
        self.sp.guard.check()
        self.policy.check_server_name(server_name)
        owner = await self.sp.owners.ready()  # the lease this start is recorded under (replicas)
        async with self.sp.storage.tx() as s:
            # a rename or delete of this user waits for this transaction, or this one finds the user gone
            if not await claim_user(s, user):
                raise NotFound(f"no user {user!r}")
            # the user and this server of theirs (if it exists) in one statement
            found = (
                await s.execute(sql.USER_AND_SERVER, {"user": user, "server": server_name})
            ).one_or_none()
            if found is None:
                raise NotFound(f"no user {user!r}")
            user_id, server_id, status = found
            if server_id is None:
                server_id = await insert_server(s, self.policy, user_id, user, server_name)
            elif status != ServerStatus.STOPPED:
                raise Conflict(f"server {user}/{server_name} is {ServerStatus(status).value}")
            limit = self.policy.config.active_server_limit
            if limit:
                n = (await s.execute(select(func.count()).where(Server.status.in_(ACTIVE)))).scalar_one()
                if n >= limit:
                    raise LimitReached(f"the hub runs its maximum of {limit} servers; try later")
            created = await s.execute(sql.NEW_SPAWN, {"server_id": server_id, "requested": _now()})
            spawn_id = sql.inserted_id(created)
            res = await s.execute(
                sql.QUEUE,
                {
                    "server_id": server_id,
                    "p_spawn": spawn_id,
                    "p_options": dict(user_options or {}),
                    "p_backend": self.policy.backend_name,
                    "p_owner": owner,
                },
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(f"server {user}/{server_name} is already starting")
            event = ProgressEvent(Phase.REQUESTED, "Spawn requested", progress=0)
            seq = await self.progress.add(s, spawn_id, event)
            await s.commit()
        self.progress.publish(spawn_id, seq, event)
        self.inflight.run_spawn(
            spawn_id, server_id, self._run(spawn_id, server_id), name=f"spawn-{user}/{server_name}"
        )
        return spawn_id

    # ---------------------------------------------------------------------------------------------- phases

    async def _run(self, spawn_id: int, server_id: int) -> None:
        sp = self.sp

        async def on_position(pos: int) -> None:
            await sp.emit(
                spawn_id,
                ProgressEvent(
                    Phase.QUEUED,
                    f"Waiting for a free slot: position {pos} in the queue",
                    progress=0,
                    queue_position=pos,
                ),
            )

        spec: ServerSpec | None = None
        owner: Owner | None = None
        ctx = BackendContext(sp, spawn_id, server_id)
        started = False
        try:
            async with sp.admission.slot(on_position):
                spec, owner = await self._begin(spawn_id, server_id)
                await refresh_before_spawn(sp, spec)
                spec = await sp.parts.hooks.pre_spawn(spec)
                started = True
                try:
                    async with asyncio.timeout(self.policy.config.start_timeout):
                        result = await sp.parts.backend.start(spec, ctx)
                except TimeoutError:
                    raise SpawnTimeout(
                        f"the spawner did not start the server within {self.policy.config.start_timeout:g} s",
                        phase="start",
                    ) from None
                ctx.state = dict(result.state)
                await self._save_endpoint(spawn_id, server_id, result.state, result.endpoint)
                await self._await_ready(spec, ctx.state, result.endpoint.url)
                await sp.parts.routes.add(
                    server_route(
                        sp.parts.urls.routespec(spec.user.name, spec.server_name),
                        result.endpoint.url,
                        spec.user.name,
                        spec.server_name,
                        self.policy.hub_id,
                    )
                )
                await self._mark_running(spawn_id, server_id, spec, owner)
            sp.guard.record(True)
            await sp.parts.hooks.server_ready(spec, result.endpoint)
            sp.inflight.finish(spawn_id, "ready")
        except OwnershipLost:
            log.warning(
                "spawn %s: another replica took this server over; leaving it to that replica", spawn_id
            )
            await asyncio.shield(self._leave(server_id, spec, ctx, started))
            sp.inflight.finish(spawn_id, "failed")
        except asyncio.CancelledError:
            if not sp.inflight.closing and not sp.inflight.abandoned(spawn_id):
                await asyncio.shield(
                    self._fail(
                        spawn_id, server_id, spec, ctx, started, "cancelled", "the spawn was cancelled"
                    )
                )
            raise
        except Exception as exc:
            code, message = _reason(exc)
            log.warning("spawn %s failed (%s): %s", spawn_id, code, message, exc_info=code == "storage-error")
            await self._fail(spawn_id, server_id, spec, ctx, started, code, message)

    async def _leave(
        self, server_id: int, spec: ServerSpec | None, ctx: BackendContext, started: bool
    ) -> None:
        """Another replica owns the row now: stop what this process's backend call created, unless that replica
        resumed the server (then it is running and routed, and is theirs)."""
        if not started or spec is None:
            return
        async with self.sp.storage.session() as s:
            status = (
                await s.execute(select(Server.status).where(Server.id == server_id))
            ).scalar_one_or_none()
        if status != ServerStatus.RUNNING:
            await stop_backend_of(self.sp, spec, ctx.state)

    async def _begin(self, spawn_id: int, server_id: int) -> tuple[ServerSpec, Owner]:
        """Write ``starting`` + fresh credentials in one transaction, then build the spec."""
        sp = self.sp
        async with sp.storage.tx() as s:
            srv, owner = await load(s, server_id)
            token = await issue_server_credentials(
                s,
                user_id=owner.id,
                server_id=srv.id,
                user=owner.name,
                server_name=srv.name,
                prefix=sp.parts.urls.server(owner.name, srv.name),
                url=sp.parts.urls.server_url(owner.name, srv.name),
            )
            await owned_write(s, sp, sql.STARTING, {"server_id": server_id})
            event = ProgressEvent(Phase.STARTING, "Starting server", progress=10)
            seq = await self.progress.add(s, spawn_id, event)
            await s.commit()
        self.progress.publish(spawn_id, seq, event)
        env = merged_env(
            build_env(sp.parts.urls, owner.name, srv.name, token), self.policy.config.environment
        )
        return spec_for(sp, srv, owner, token=token, env=env), owner

    async def _watch_exit(self, spec: ServerSpec, state: JSONDict) -> ExitStatus:
        delay = 0.05
        while True:
            status = await self.sp.parts.backend.poll(spec, state)
            if status is not None:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _await_ready(self, spec: ServerSpec, state: JSONDict, url: str) -> None:
        check = f"{url.rstrip('/')}{spec.url_prefix}api"
        timeout = self.policy.config.http_timeout
        ready = asyncio.ensure_future(wait_http(lambda: self.http, check))
        died = asyncio.ensure_future(self._watch_exit(spec, state))
        try:
            done, _ = await asyncio.wait({ready, died}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            died.cancel()
        if ready in done:
            return
        if died in done:
            status = died.result()
            reason = status.reason or (f"exit code {status.code}" if status.code is not None else "it exited")
            raise SpawnFailed(
                f"the server exited before it answered HTTP: {reason}",
                reason_code=status.reason_code or "exited",
            )
        raise SpawnTimeout(f"the server did not answer {check} within {timeout:g} s", phase="http")

    async def _save_endpoint(
        self, spawn_id: int, server_id: int, state: JSONDict, endpoint: Endpoint
    ) -> None:
        async with self.sp.storage.tx() as s:
            await owned_write(
                s,
                self.sp,
                sql.ENDPOINT,
                {"server_id": server_id, "p_state": dict(state), "p_url": endpoint.url},
            )
            event = ProgressEvent(Phase.WAITING_HTTP, "Server started; waiting for it to answer", progress=60)
            seq = await self.progress.add(s, spawn_id, event)
            await s.commit()
        self.progress.publish(spawn_id, seq, event)

    async def _mark_running(
        self, spawn_id: int, server_id: int, spec: ServerSpec, owner: Owner | None
    ) -> None:
        now = _now()
        async with self.sp.storage.tx() as s:
            await owned_write(s, self.sp, sql.RUNNING, {"server_id": server_id, "p_now": now})
            if owner is None or owner.spawn_failures:  # the failure count is reset only when there is one
                await s.execute(sql.RESET_FAILURES, {"user_id": spec.user.id})
            await s.execute(sql.SPAWN_READY, {"spawn_id": spawn_id, "p_now": now})
            url = self.sp.parts.urls.server_url(spec.user.name, spec.server_name)
            event = ProgressEvent(Phase.READY, f"Server ready at {url}", progress=100, detail={"url": url})
            seq = await self.progress.add(s, spawn_id, event)
            await s.commit()
        self.progress.publish(spawn_id, seq, event)

    async def _fail(
        self,
        spawn_id: int,
        server_id: int,
        spec: ServerSpec | None,
        ctx: BackendContext,
        started: bool,
        code: str,
        message: str,
    ) -> None:
        """Undo everything and record the failure in the transaction that resets the row, then publish it."""
        sp = self.sp
        tail: list[str] = []
        state: JSONDict = {}
        if started and spec is not None:
            state = await stored_state(sp, server_id) or ctx.state
            try:
                async with asyncio.timeout(5):
                    tail = await sp.parts.backend.log_tail(spec, state, 20)
            except Exception:
                tail = []
        sp.guard.record(False)
        event = ProgressEvent(
            Phase.FAILED,
            f"Spawn failed: {message}",
            progress=100,
            reason_code=code,
            detail={"log_tail": tail} if tail else {},
        )
        seqs: list[int] = []

        async def record(s: AsyncSession) -> None:
            ended = await s.execute(
                update(Spawn)
                .where(Spawn.id == spawn_id, Spawn.outcome.is_(None))
                .values(
                    outcome="cancelled" if code == "cancelled" else "failed",
                    reason_code=code,
                    message=message,
                    finished=_now(),
                )
            )
            if not ended.rowcount:  # type: ignore[attr-defined]
                return  # another replica finished it (this one lost the row)
            if spec is not None and spec.user.id is not None:
                await s.execute(
                    update(User).where(User.id == spec.user.id).values(spawn_failures=User.spawn_failures + 1)
                )
            seqs.append(await self.progress.add(s, spawn_id, event))

        await teardown(sp, server_id, spec, state, stop_backend=started and spec is not None, also=record)
        if seqs:
            self.progress.publish(spawn_id, seqs[0], event)
        sp.inflight.finish(spawn_id, "failed")

    # ---------------------------------------------------------------------------------------------- stop

    async def stop(self, user: str, server_name: str = "", *, remove: bool = False, reason: str = "") -> bool:
        """Stop (and with ``remove``, delete) a server. ``False`` when it is still stopping in the background."""
        found = await self.sp.storage.reads.one(SERVER_OF_USER, user=user, server=server_name)
        if found is None:
            raise NotFound(f"no user {user!r}")
        server_id = found[1]
        if server_id is None:
            if server_name:
                raise NotFound(f"no server {user}/{server_name}")
            return True
        task = self.inflight.stop_task(
            server_id,
            stop_server(self.sp, server_id, remove=remove, reason=reason),
            name=f"stop-{user}/{server_name}",
        )
        done, _ = await asyncio.wait({task}, timeout=self.policy.stop_wait)
        if task in done:
            task.result()
            return True
        return False

    async def stop_all(self, *, reason: str, within: float) -> int:
        """Stop every server that is not stopped (a hub shutdown that takes them along), waiting up to
        ``within`` seconds for all of them. Returns how many were stopped; the rest are logged and left to the next
        hub's adoption."""
        async with self.sp.storage.session() as s:
            rows = (
                await s.execute(
                    select(Server.id, User.name, Server.name)
                    .join(User, User.id == Server.user_id)
                    .where(Server.status != ServerStatus.STOPPED)
                )
            ).all()
        tasks = [
            self.inflight.stop_task(
                sid, stop_server(self.sp, sid, remove=False, reason=reason), name=f"stop-{user}/{name}"
            )
            for sid, user, name in rows
        ]
        if not tasks:
            return 0
        done, pending = await asyncio.wait(tasks, timeout=within)
        failed = sum(1 for t in done if t.exception() is not None)
        if pending or failed:
            log.warning(
                "%d of %d servers did not stop cleanly in %g s", len(pending) + failed, len(tasks), within
            )
        return len(done) - failed

    # ---------------------------------------------------------------------------------------------- shutdown

    async def close(self) -> None:
        """Stop driving spawns; user servers keep running and in-flight ones are adopted on next start."""
        await self.inflight.cancel_all()
        await self.queue.close()
        await self.progress.close()
        if self._http is not None:
            await self._http.aclose()


async def owned_write(s: AsyncSession, sp: Spawning, statement: Any, params: dict[str, Any]) -> None:
    """One of the phase writes (``sql.OWNED``): raises :class:`OwnershipLost` when the row is no longer ours."""
    res = await s.execute(statement, {**params, "p_owner": sp.owners.instance})
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise OwnershipLost(params["server_id"])


def _reason(exc: Exception) -> tuple[str, str]:
    """The failure users see. A storage error's text carries SQL and its parameters (hashes included): it goes
    to the hub log only."""
    if isinstance(exc, SpawnFailed):
        return exc.reason_code, str(exc)
    if isinstance(exc, PluginError):
        return "plugin-error", str(exc)
    if isinstance(exc, SQLAlchemyError):
        return "storage-error", "the hub could not store the server's state (details in the hub's log)"
    return "backend-error", f"{type(exc).__name__}: {exc}"
