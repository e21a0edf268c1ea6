"""Stopping a server, and the teardown shared by stops, failed spawns, dead servers and adoption.

Order: route out, backend stopped, credentials revoked, row reset (or deleted). Errors are logged, not raised:
a half-torn-down server is worse than a logged failure. A spawn that ends with the teardown (failed, cancelled,
abandoned) gets its outcome in the same transaction as the row's reset: a process killed between two writes
would leave the spawn open beside a stopped server, and nothing would ever finish it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..interfaces import ExitStatus, JSONDict, ServerSpec
from ..storage.orm import Server, ServerStatus
from .context import Spawning
from .credentials import revoke_server_credentials
from .ownership import driven_elsewhere, request_stop
from .records import load_spec

log = logging.getLogger("hubkit.spawn")


async def teardown(
    sp: Spawning,
    server_id: int,
    spec: ServerSpec | None,
    state: JSONDict,
    *,
    stop_backend: bool,
    remove: bool = False,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> None:
    """``also`` writes in the transaction that resets the row (the spawn's outcome)."""
    if spec is not None:
        routespec = sp.parts.urls.routespec(spec.user.name, spec.server_name)
        try:
            await sp.parts.routes.remove(routespec)
        except Exception:
            log.exception("removing route %s", routespec)
        if stop_backend:
            await stop_backend_of(sp, spec, state)
    async with sp.storage.tx() as s:
        await revoke_server_credentials(s, server_id)
        if remove:
            await s.execute(delete(Server).where(Server.id == server_id))
        else:
            await s.execute(
                update(Server)
                .where(Server.id == server_id)
                .values(status=ServerStatus.STOPPED, state={}, url=None, lease_owner=None)
                .execution_options(synchronize_session=False)
            )
        if also is not None:
            await also(s)
        await s.commit()


async def stop_backend_of(sp: Spawning, spec: ServerSpec, state: JSONDict) -> None:
    """The backend's ``stop``, bounded by ``stop_timeout``; forced (``now``) when the polite one hangs."""
    timeout = sp.policy.config.stop_timeout
    for now in (False, True):
        try:
            async with asyncio.timeout(timeout):
                await sp.parts.backend.stop(spec, state, now=now)
            return
        except TimeoutError:
            log.warning("stopping %s took over %g s%s", spec.full_name, timeout, "" if now else "; forcing")
        except Exception:
            log.exception("stopping %s failed", spec.full_name)
            if now:
                return


async def wait_for_owner(sp: Spawning, server_id: int) -> None:
    """While another live replica starts or stops this server: ask it to stop a spawn, then wait until it is
    done with the row, or has died (then the row is ours to finish)."""
    found = await driven_elsewhere(sp, server_id)
    if found is None:
        return
    status, owner = found
    if status != ServerStatus.STOPPING:
        await request_stop(sp, server_id)
    log.info("server %d is driven by replica %s: stop requested there, waiting", server_id, owner)
    cfg = sp.policy.config
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.start_timeout + cfg.http_timeout + 2 * cfg.stop_timeout + 10
    while await driven_elsewhere(sp, server_id) is not None:
        if loop.time() > deadline:
            log.warning(
                "replica %s did not finish with server %d in time; stopping it from here", owner, server_id
            )
            return
        await asyncio.sleep(0.2)


async def stop_server(sp: Spawning, server_id: int, *, remove: bool, reason: str) -> None:
    await sp.inflight.cancel_spawn(server_id)
    if sp.owners.shared:
        await wait_for_owner(sp, server_id)
    try:
        spec, srv = await load_spec(sp, server_id)
    except LookupError:
        return
    if srv.status == ServerStatus.STOPPED:
        if remove:
            await teardown(sp, server_id, None, {}, stop_backend=False, remove=True)
        return
    owner = await sp.owners.ready()
    async with sp.storage.tx() as s:
        await s.execute(
            update(Server)
            .where(Server.id == server_id)
            .values(status=ServerStatus.STOPPING, lease_owner=owner)
            .execution_options(synchronize_session=False)
        )
        await s.commit()
    await teardown(sp, server_id, spec, dict(srv.state or {}), stop_backend=True, remove=remove)
    log.info("stopped %s%s", spec.full_name, f" ({reason})" if reason else "")
    await sp.parts.hooks.post_stop(spec, None)


async def handle_dead(
    sp: Spawning,
    server_id: int,
    status: ExitStatus,
    *,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> None:
    """A server the poller (or adoption) found gone: route out, clean up, tell plugins how it ended.
    ``also`` as for :func:`teardown` (adoption ends the server's open spawn with the reset)."""
    try:
        spec, srv = await load_spec(sp, server_id)
    except LookupError:
        return
    log.warning("server %s is gone: %s", spec.full_name, status.reason or status.reason_code)
    await teardown(sp, server_id, spec, dict(srv.state or {}), stop_backend=True, also=also)
    await sp.parts.hooks.post_stop(spec, status)
