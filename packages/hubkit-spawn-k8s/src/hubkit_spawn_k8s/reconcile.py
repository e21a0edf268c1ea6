"""Compare this hub's labelled pods with the servers it knows: adopt matches, remove or report orphans,
and name known servers whose pod is missing (drift)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hubkit.interfaces import KnownServer, ReconcileReport

from . import names

log = logging.getLogger(__name__)
Obj = dict[str, Any]


async def reconcile_pods(
    pods: list[Obj],
    known: Sequence[KnownServer],
    remove_orphans: bool,
    remove: Callable[..., Awaitable[None]],
) -> ReconcileReport:
    by_pod = {k.state.get("pod_name"): k for k in known if k.state.get("pod_name")}
    by_key = {(k.spec.user.name, k.spec.server_name): k for k in known}
    adopted, removed, reported, found = [], [], [], set()
    for pod in pods:
        meta = pod["metadata"]
        name = meta["name"]
        ann = meta.get("annotations") or {}
        match = by_pod.get(name) or by_key.get((str(ann.get(names.ANNOTATION_USER)), str(ann.get(names.ANNOTATION_SERVER, ""))))
        if match is not None and not meta.get("deletionTimestamp"):
            found.add(match.spec.full_name)
            adopted.append(match.spec.full_name)
            if match.state.get("pod_name") != name:
                log.warning("server %s runs in pod %s, not %s as stored", match.spec.full_name, name,
                            match.state.get("pod_name"))
            continue
        if meta.get("deletionTimestamp"):
            continue
        ident = f"{meta.get('namespace', '')}/{name}"
        if remove_orphans:
            await remove(name, grace=0)
            removed.append(ident)
        else:
            reported.append(ident)
        log.warning("orphan pod %s (user %r, server %r) %s", ident, ann.get(names.ANNOTATION_USER),
                    ann.get(names.ANNOTATION_SERVER), "removed" if remove_orphans else "left running")
    missing = [k.spec.full_name for k in known if k.spec.full_name not in found]
    return ReconcileReport(adopted=tuple(adopted), removed=tuple(removed), reported=tuple(reported),
                           missing=tuple(missing))


async def reconcile_owned(
    kind: str,
    items: list[Obj],
    known: Sequence[KnownServer],
    state_key: str,
    remove_orphans: bool,
    remove: Callable[[str], Awaitable[None]],
) -> tuple[list[str], list[str]]:
    """Per-server objects besides the pod (token Secrets, Services): an object no known server names in its
    state, nor claims through the user/server annotations, is an orphan. Returns (removed, reported)."""
    names_known = {k.state.get(state_key) for k in known if k.state.get(state_key)}
    keys_known = {(k.spec.user.name, k.spec.server_name) for k in known}
    removed: list[str] = []
    reported: list[str] = []
    for obj in items:
        meta = obj["metadata"]
        ann = meta.get("annotations") or {}
        key = (str(ann.get(names.ANNOTATION_USER)), str(ann.get(names.ANNOTATION_SERVER, "")))
        if meta["name"] in names_known or key in keys_known or meta.get("deletionTimestamp"):
            continue
        ident = f"{kind} {meta.get('namespace', '')}/{meta['name']}"
        if remove_orphans:
            await remove(meta["name"])
            removed.append(ident)
        else:
            reported.append(ident)
        log.warning("orphan %s (user %r, server %r) %s", ident, ann.get(names.ANNOTATION_USER),
                    ann.get(names.ANNOTATION_SERVER), "removed" if remove_orphans else "left in place")
    return removed, reported
