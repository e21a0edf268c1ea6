"""The fake API server's object store: one global, monotonically increasing ``resourceVersion`` (like
etcd's revision), a bounded change history per resource for watch resumption, and compaction that makes
older versions ``410 Gone``. Everything runs on the fake server's event loop thread; no locks needed."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .selectors import Predicate, event_fields, generic_fields, pod_fields
from .status import ApiError, already_exists, not_found

Obj = dict[str, Any]
RESOURCES = ("pods", "persistentvolumeclaims", "services", "events", "namespaces")
CLUSTER_SCOPED = {"namespaces"}
Listener = Callable[[str, str, Obj], None]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_of(resource: str, obj: Obj) -> dict[str, str]:
    if resource == "pods":
        return pod_fields(obj)
    if resource == "events":
        return event_fields(obj)
    return generic_fields(obj)


class Gone(Exception):
    """A watch asked for a version older than the retained history."""


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    labels: Predicate
    fields: Predicate
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(fields_of(self.resource, obj))


@dataclass
class WatchStats:
    total: int = 0  # watch requests ever made
    active: int = 0
    max_active: int = 0


class Store:
    def __init__(self, history_limit: int = 50_000) -> None:
        self.rv = 1
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in RESOURCES}
        self.history: dict[str, deque[tuple[int, str, Obj]]] = {r: deque() for r in RESOURCES}
        self.compacted: dict[str, int] = {r: 0 for r in RESOURCES}
        self.history_limit = history_limit
        self.watchers: dict[str, set[Watcher]] = {r: set() for r in RESOURCES}
        self.stats: dict[str, WatchStats] = {r: WatchStats() for r in RESOURCES}
        self.listeners: list[Listener] = []
        self.requests: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def key(resource: str, namespace: str | None, name: str) -> tuple[str, str]:
        return ("" if resource in CLUSTER_SCOPED else (namespace or ""), name)

    def _record(self, resource: str, kind: str, obj: Obj) -> None:
        hist = self.history[resource]
        hist.append((int(obj["metadata"]["resourceVersion"]), kind, obj))
        while len(hist) > self.history_limit:
            old_rv, _, _ = hist.popleft()
            self.compacted[resource] = old_rv
        for w in list(self.watchers[resource]):
            if w.matches(obj):
                w.queue.put_nowait((kind, obj))
        for listener in list(self.listeners):
            listener(resource, kind, obj)

    def _bump(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    # -- CRUD ---------------------------------------------------------------------------------------------
    def create(self, resource: str, namespace: str | None, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if resource not in CLUSTER_SCOPED:
            if namespace is None:
                raise ApiError(400, "BadRequest", "the namespace of the object must be set")
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request"
                )
            if self.key("namespaces", None, namespace) not in self.objects["namespaces"]:
                raise not_found("namespaces", namespace)
            meta["namespace"] = namespace
        key = self.key(resource, namespace, meta["name"])
        if key in self.objects[resource]:
            raise already_exists(resource, meta["name"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta.pop("deletionTimestamp", None)
        self._bump(obj)
        self.objects[resource][key] = obj
        self._record(resource, "ADDED", obj)
        return obj

    def get(self, resource: str, namespace: str | None, name: str) -> Obj:
        try:
            return self.objects[resource][self.key(resource, namespace, name)]
        except KeyError:
            raise not_found(resource, name) from None

    def list(
        self, resource: str, namespace: str | None, labels: Predicate, fields: Predicate
    ) -> tuple[list[Obj], int]:
        probe = Watcher(resource, namespace, labels, fields)
        items = [o for o in self.objects[resource].values() if probe.matches(o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, self.rv

    def update(self, resource: str, namespace: str | None, name: str, mutate: Callable[[Obj], None]) -> Obj:
        """Apply ``mutate`` to a copy and store it as a new version (MODIFIED)."""
        obj = copy.deepcopy(self.get(resource, namespace, name))
        mutate(obj)
        self._bump(obj)
        self.objects[resource][self.key(resource, namespace, name)] = obj
        self._record(resource, "MODIFIED", obj)
        return obj

    def remove(self, resource: str, namespace: str | None, name: str) -> Obj:
        """Finally delete (DELETED event)."""
        key = self.key(resource, namespace, name)
        obj = self.objects[resource].pop(key, None)
        if obj is None:
            raise not_found(resource, name)
        obj = copy.deepcopy(obj)
        self._bump(obj)
        self._record(resource, "DELETED", obj)
        return obj

    # -- watch --------------------------------------------------------------------------------------------
    def open_watch(
        self, resource: str, namespace: str | None, labels: Predicate, fields: Predicate, since: int | None
    ) -> Watcher:
        """Register a watcher, pre-filled with what happened after ``since`` (or the current state as ADDED)."""
        w = Watcher(resource, namespace, labels, fields)
        if since is None or since == 0:
            for obj in self.list(resource, namespace, labels, fields)[0]:
                w.queue.put_nowait(("ADDED", obj))
        else:
            if since < self.compacted[resource]:
                raise Gone(f"too old resource version: {since} ({self.compacted[resource]})")
            for rv, kind, obj in self.history[resource]:
                if rv > since and w.matches(obj):
                    w.queue.put_nowait((kind, obj))
        self.watchers[resource].add(w)
        stats = self.stats[resource]
        stats.total += 1
        stats.active += 1
        stats.max_active = max(stats.max_active, stats.active)
        return w

    def close_watch(self, w: Watcher) -> None:
        if w in self.watchers[w.resource]:
            self.watchers[w.resource].discard(w)
            self.stats[w.resource].active -= 1

    def compact(self, resources: Iterable[str] = RESOURCES) -> None:
        """Forget history up to now: any watch resumed from an older version gets ``410 Gone``."""
        for r in resources:
            self.history[r].clear()
            self.compacted[r] = self.rv

    def end_watches(self, resources: Iterable[str] = RESOURCES) -> None:
        """Close every open watch stream (the client sees the connection end and must resume)."""
        for r in resources:
            for w in list(self.watchers[r]):
                w.queue.put_nowait(None)
