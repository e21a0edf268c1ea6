"""Spawn ownership: which hub process drives a server's start or stop (``servers.lease_owner``), and whether that
process still lives.

A start or a stop records the process that runs it as the row's owner in the same write that moves the row to
``queued`` or ``stopping``. While the row is in such a transient state only its owner acts on it; another replica
that finds the owner dead (its lease gone, :class:`~.owners.Owners`) claims the row with a conditional update and finishes
it the way adoption after a restart would (:mod:`.adopt`): resumed when the server is up, else cleaned up and
failed with a reason that a retry fixes. A stop that reaches a replica other than the owner is written down
(:func:`request_stop`) and carried out by the owner's engine (:mod:`.remote_stop`).
"""

from __future__ import annotations

from sqlalchemy import select, update

from ..storage.orm import Server, ServerStatus, Spawn
from .context import Spawning

TRANSIENT = (ServerStatus.QUEUED, ServerStatus.STARTING, ServerStatus.STOPPING)
STOP_REQUESTED = "stop-requested"  # spawns.reason_code while its outcome is still open: "stop this spawn"


async def driven_elsewhere(sp: Spawning, server_id: int) -> tuple[ServerStatus, str | None] | None:
    """The row's status and owner when another live process drives its start or stop; else ``None``."""
    async with sp.storage.session() as s:
        row = (
            await s.execute(select(Server.status, Server.lease_owner).where(Server.id == server_id))
        ).one_or_none()
    if row is None:
        return None
    status, owner = ServerStatus(row[0]), row[1]
    if status not in TRANSIENT or owner == sp.owners.instance:
        return None
    return (status, owner) if await sp.owners.owner_alive(owner) else None


async def claim(sp: Spawning, server_id: int, status: ServerStatus, owner: str | None) -> bool:
    """Make this process the owner of a transient row whose owner died; ``False`` when the row changed meanwhile
    (another replica claimed it, or the owner finished)."""
    cond = Server.lease_owner.is_(None) if owner is None else Server.lease_owner == owner
    me = await sp.owners.ready()
    async with sp.storage.tx() as s:
        res = await s.execute(
            update(Server)
            .where(Server.id == server_id, Server.status == status, cond)
            .values(lease_owner=me)
            .execution_options(synchronize_session=False)
        )
        await s.commit()
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def request_stop(sp: Spawning, server_id: int) -> None:
    """Ask the owner of a spawn in flight to stop it: its engine polls for this mark (:mod:`.remote_stop`)."""
    async with sp.storage.tx() as s:
        spawn_id = (
            await s.execute(select(Server.current_spawn_id).where(Server.id == server_id))
        ).scalar_one_or_none()
        if spawn_id is not None:
            await s.execute(
                update(Spawn)
                .where(Spawn.id == spawn_id, Spawn.outcome.is_(None))
                .values(reason_code=STOP_REQUESTED)
                .execution_options(synchronize_session=False)
            )
        await s.commit()
