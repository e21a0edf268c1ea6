"""Compare the hub's labelled containers with the servers it believes in: adopt, remove or report.

Only containers labelled with *this* hub's id are considered, so two hubs can share one engine. A running
container the hub does not know is an orphan (left by a crash mid-spawn, or by a deleted database); a stopped
one is only a leftover when containers are meant to be removed on stop, otherwise it was kept on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import docker.errors
from hubkit.interfaces import KnownServer, ReconcileReport

from .naming import LABEL_HUB, LABEL_ROLE, LABEL_SERVER, LABEL_USER

if TYPE_CHECKING:
    from docker.models.containers import Container

    from .backend import DockerSpawner


def _is_running(c: Container) -> bool:
    return c.status in ("running", "restarting")


async def reconcile_containers(
    backend: DockerSpawner, known: Sequence[KnownServer], *, remove_orphans: bool
) -> ReconcileReport:
    client = backend.client
    hub_id = backend.hub.hub_id
    remove_stopped = backend.config.remove_on_stop
    by_key = {(k.spec.user.name, k.spec.server_name): k for k in known}

    def work() -> ReconcileReport:
        filters = {"label": [f"{LABEL_HUB}={hub_id}", f"{LABEL_ROLE}=server"]}
        containers = client.containers.list(all=True, filters=filters)
        adopted: list[str] = []
        removed: list[str] = []
        reported: list[str] = []
        seen: set[tuple[str, str]] = set()
        for c in containers:
            labels = c.labels or {}
            key = (labels.get(LABEL_USER, ""), labels.get(LABEL_SERVER, ""))
            k = by_key.get(key)
            expected = (
                k is not None
                and k.state.get("container_name") in (c.name, None)
                and (not k.state.get("container_id") or k.state["container_id"] == c.id)
            )
            if expected and _is_running(c):
                adopted.append(f"{key[0]}/{key[1]}")
                seen.add(key)
                continue
            if expected:
                continue  # known but exited: reported as missing below, the poller handles the exit
            if not _is_running(c) and not remove_stopped:
                continue  # kept on purpose (remove_on_stop = false)
            ident = c.name or c.id or "?"
            if remove_orphans:
                try:
                    c.remove(force=True)
                except docker.errors.NotFound:
                    pass
                removed.append(ident)
            else:
                reported.append(ident)
        missing = tuple(f"{u}/{s}" for (u, s) in by_key if (u, s) not in seen)
        return ReconcileReport(
            adopted=tuple(adopted), removed=tuple(removed), reported=tuple(reported), missing=missing
        )

    return await backend._run(work)
