"""Re-adoption after a hub (re)start: look only at servers the database says are live.

Cost grows with the number of live servers, never with the number of users. Each is polled with bounded
concurrency while the hub already answers requests: alive → kept and routed; gone → cleaned up;
``queued`` (the in-memory queue died with the old process) → failed with ``hub-restarted``; ``starting``
without an address → stopped, since nobody can tell whether it would ever come up; ``stopping`` → finished.

With hub replicas a row in a transient state belongs to the replica that drives it (:mod:`.ownership`): adoption
leaves it alone while that owner lives, and :func:`take_over_forever` (a singleton duty) finishes it the same way,
with ``replica-lost``, as soon as the owner dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..interfaces import KnownServer, Phase, ProgressEvent, ReconcileReport
from ..routing.reconcile import server_route
from ..storage.orm import Server, ServerStatus, Spawn
from .context import Spawning
from .ownership import TRANSIENT, claim
from .pool import bounded_each
from .records import LiveRow, live_servers
from .stopping import handle_dead, teardown

log = logging.getLogger("hubkit.adopt")

LIVE = (ServerStatus.QUEUED, ServerStatus.STARTING, ServerStatus.RUNNING, ServerStatus.STOPPING)


@dataclass
class AdoptReport:
    kept: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    orphans: ReconcileReport | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seconds: float = 0.0


@dataclass(frozen=True)
class Cause:
    """Why a spawn in flight is finished by someone else than its driver: the reason users read."""

    code: str
    restart: str  # the hub (or the spawn's replica) went away


RESTART = Cause("hub-restarted", "the hub restarted")
REPLICA_LOST = Cause("replica-lost", "the hub replica running this spawn stopped")


def _abandon(
    sp: Spawning, spawn_id: int | None, message: str, code: str
) -> Callable[[AsyncSession], Awaitable[None]]:
    """Fail a spawn that is still open, inside the caller's transaction (see :func:`.stopping.teardown`)."""

    async def write(s: AsyncSession) -> None:
        if spawn_id is None:
            return
        res = await s.execute(
            update(Spawn)
            .where(Spawn.id == spawn_id, Spawn.outcome.is_(None))
            .values(outcome="failed", reason_code=code, message=message, finished=datetime.now(UTC))
        )
        if res.rowcount:  # type: ignore[attr-defined]
            await sp.progress.add(
                s, spawn_id, ProgressEvent(Phase.FAILED, f"Spawn failed: {message}", 100, reason_code=code)
            )

    return write


async def adopt_one(sp: Spawning, row: LiveRow, report: AdoptReport, cause: Cause = RESTART) -> None:
    spec, srv = row
    server_id, status, url, spawn_id = srv.id, srv.status, srv.url, srv.current_spawn_id
    state = dict(srv.state or {})
    name = spec.full_name
    backend_name = sp.policy.backend_name
    if srv.backend and srv.backend != backend_name:
        # polled by the wrong backend it would look dead and be "cleaned": leave it for an operator
        log.error(
            "%s was started by spawner %r but %r is configured: left alone",
            name,
            srv.backend,
            backend_name,
        )
        report.errors.append(name)
        return
    try:
        if status == ServerStatus.QUEUED:
            why = f"{cause.restart} while this spawn was queued; start again"
            await teardown(
                sp, server_id, None, {}, stop_backend=False, also=_abandon(sp, spawn_id, why, cause.code)
            )
            report.cleaned.append(name)
            return
        if status == ServerStatus.STOPPING or (status == ServerStatus.STARTING and not url):
            why = f"{cause.restart} during this spawn; start again"
            await teardown(
                sp, server_id, spec, state, stop_backend=True, also=_abandon(sp, spawn_id, why, cause.code)
            )
            report.cleaned.append(name)
            return
        async with asyncio.timeout(sp.policy.config.http_timeout):
            exit_status = await sp.parts.backend.poll(spec, state)
        if exit_status is not None:
            why = f"the server exited after {cause.restart}"
            await handle_dead(sp, server_id, exit_status, also=_abandon(sp, spawn_id, why, cause.code))
            report.cleaned.append(name)
            return
        assert url is not None
        await sp.parts.routes.add(
            server_route(
                sp.parts.urls.routespec(spec.user.name, spec.server_name),
                url,
                spec.user.name,
                spec.server_name,
                sp.policy.hub_id,
            )
        )
        if status == ServerStatus.STARTING:
            async with sp.storage.tx() as s:
                now = datetime.now(UTC)
                await s.execute(
                    update(Server)
                    .where(Server.id == server_id)
                    .values(status=ServerStatus.RUNNING, started=now, last_activity=now)
                    .execution_options(synchronize_session=False)
                )
                if spawn_id is not None:
                    await s.execute(
                        update(Spawn).where(Spawn.id == spawn_id).values(outcome="ready", finished=now)
                    )
                    await sp.progress.add(
                        s,
                        spawn_id,
                        ProgressEvent(
                            Phase.READY,
                            f"Server ready at {sp.parts.urls.server_url(spec.user.name, spec.server_name)}",
                            100,
                            detail={"url": sp.parts.urls.server_url(spec.user.name, spec.server_name)},
                        ),
                    )
                await s.commit()
        report.kept.append(name)
    except Exception as exc:  # a flaky poll must not kill a server: keep it, log, retry at the next poll
        log.warning("adopting %s: %r", name, exc)
        report.errors.append(name)


async def adopt_all(sp: Spawning, report: AdoptReport) -> AdoptReport:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        rows = [r for r in await live_servers(sp, LIVE) if await _ours_to_finish(sp, r)]
        await bounded_each(
            rows, lambda r: adopt_one(sp, r, report, _cause(sp, r)), sp.policy.config.adopt_concurrency
        )
        report.seconds = loop.time() - t0
        log.info(
            "adopted %d servers, cleaned %d, %d errors in %.2f s",
            len(report.kept),
            len(report.cleaned),
            len(report.errors),
            report.seconds,
        )
        await reconcile_orphans(sp, report)
    finally:
        report.done.set()
    return report


async def reconcile_orphans(sp: Spawning, report: AdoptReport) -> None:
    """Ask the backend for resources labelled with this hub that no live server owns ([spawner]
    ``reconcile_orphans``: ``report`` logs them, ``remove`` deletes them, ``off`` skips the check)."""
    mode = sp.policy.config.reconcile_orphans
    if mode == "off":
        return
    kept = await live_servers(sp, (ServerStatus.RUNNING, ServerStatus.STARTING))
    known = [KnownServer(spec=spec, state=dict(srv.state or {})) for spec, srv in kept]
    try:
        async with asyncio.timeout(sp.policy.config.http_timeout):
            result = await sp.parts.backend.reconcile(known, remove_orphans=mode == "remove")
    except Exception as exc:
        log.warning("orphan check by the spawner failed: %r", exc)
        return
    report.orphans = result
    if result.removed:
        log.warning(
            "removed %d orphaned server resources: %s", len(result.removed), ", ".join(result.removed)
        )
    if result.reported:
        log.warning(
            "%d server resources carry this hub's label but belong to no server (set [spawner] "
            'reconcile_orphans = "remove" to delete them): %s',
            len(result.reported),
            ", ".join(result.reported),
        )


def _cause(sp: Spawning, row: LiveRow) -> Cause:
    """With replicas, a spawn in flight found by adoption belonged to a replica that died (adoption runs when its
    duty moves, not only after a restart): users read ``replica-lost``, as when the take-over duty finds it."""
    return REPLICA_LOST if sp.owners.shared and row[1].status in TRANSIENT else RESTART


async def _ours_to_finish(sp: Spawning, row: LiveRow) -> bool:
    """A running server is everyone's to check; a transient one only once its owner died and this process claimed
    it (its own spawns in flight stay with their tasks)."""
    srv = row[1]
    if srv.status not in TRANSIENT:
        return True
    if srv.lease_owner == sp.owners.instance or await sp.owners.owner_alive(srv.lease_owner):
        return False
    return await claim(sp, srv.id, srv.status, srv.lease_owner)


async def take_over_once(sp: Spawning, report: AdoptReport) -> int:
    """Finish every start or stop whose owning replica died; how many."""
    async with sp.storage.session() as s:
        rows = (
            await s.execute(
                select(Server.id, Server.status, Server.lease_owner).where(
                    Server.status.in_(TRANSIENT),
                    or_(Server.lease_owner.is_(None), Server.lease_owner != sp.owners.instance),
                )
            )
        ).all()
    alive: dict[str | None, bool] = {}
    for owner in {row[2] for row in rows}:
        alive[owner] = await sp.owners.owner_alive(owner)
    taken: list[int] = []

    async def finish(row: tuple[int, ServerStatus, str | None]) -> None:
        server_id, status, owner = row
        if not await claim(sp, server_id, status, owner):
            return
        found = await live_servers(sp, (status,), ids=[server_id])
        if not found:
            return
        log.warning(
            "server %s: its replica %s died during a %s; finishing it here",
            found[0][0].full_name,
            owner,
            "stop" if status == ServerStatus.STOPPING else "spawn",
        )
        await adopt_one(sp, found[0], report, REPLICA_LOST)
        taken.append(server_id)

    # a dead replica leaves up to concurrent_spawn_limit rows: finished side by side, as adoption does
    dead = [(r[0], ServerStatus(r[1]), r[2]) for r in rows if not alive[r[2]]]
    await bounded_each(dead, finish, sp.policy.config.adopt_concurrency)
    return len(taken)


async def take_over_forever(sp: Spawning, interval: float = 1.0) -> None:
    """The singleton duty that makes sure no spawn stays pending after its replica died."""
    report = AdoptReport()
    while True:
        try:
            await take_over_once(sp, report)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("taking over spawns of dead replicas failed")
        await asyncio.sleep(interval)
