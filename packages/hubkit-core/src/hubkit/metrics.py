"""Prometheus metrics for ``/hub/metrics``, kept in a per-app registry (several hubs can share a process).

Spawn phase durations are derived from the stored spawn events of finished spawns (read incrementally at
scrape time), so they cover spawns driven by any hub process and need no hook in the spawn engine. Gauges
(running servers, queue length) are read from the database at scrape time.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from .storage.orm import Server, ServerStatus, Spawn, SpawnEvent

if TYPE_CHECKING:
    from .storage.access import Storage


class HasStorage(Protocol):
    @property
    def storage(self) -> Storage: ...


# spawns can take many minutes (image pulls, node scale-up): buckets go up to an hour
SPAWN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "hubkit_request_duration_seconds",
            "Hub HTTP request latency",
            ["method", "route", "code"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.logins = Counter("hubkit_logins_total", "Login attempts by outcome", ["outcome"], registry=r)
        self.throttled = Counter(
            "hubkit_throttled_requests_total",
            "Requests refused or delayed by a limit",
            ["reason"],
            registry=r,
        )
        self.spawn_phase = Histogram(
            "hubkit_spawn_phase_duration_seconds",
            "Time spent in each spawn phase",
            ["phase", "outcome"],
            buckets=SPAWN_BUCKETS,
            registry=r,
        )
        self.spawn_total = Histogram(
            "hubkit_spawn_duration_seconds",
            "Request-to-ready (or failure) time of spawns",
            ["outcome"],
            buckets=SPAWN_BUCKETS,
            registry=r,
        )
        self.running = Gauge("hubkit_running_servers", "Servers that are running", registry=r)
        self.pending = Gauge("hubkit_pending_spawns", "Spawns in progress (starting)", registry=r)
        self.queue = Gauge("hubkit_spawn_queue_length", "Spawns waiting in the admission queue", registry=r)
        self.culled = Counter(
            "hubkit_culled_servers_total", "Servers stopped by the idle culler", ["why"], registry=r
        )
        self._last_spawn_id = 0

    def login(self, outcome: str) -> None:
        self.logins.labels(outcome=outcome).inc()
        if outcome == "throttled":
            self.throttled.labels(reason="login-rate-limit").inc()

    async def _observe_spawns(self, source: HasStorage) -> None:
        async with source.storage.session() as session:
            spawns = list(
                (
                    await session.execute(
                        select(Spawn)
                        .where(Spawn.id > self._last_spawn_id, Spawn.outcome.is_not(None))
                        .order_by(Spawn.id)
                        .limit(1000)
                    )
                ).scalars()
            )
            if not spawns:
                return
            # only advance past a contiguous run of finished spawns, so none is skipped
            unfinished = (
                await session.execute(
                    select(func.min(Spawn.id)).where(Spawn.id > self._last_spawn_id, Spawn.outcome.is_(None))
                )
            ).scalar_one_or_none()
            ids = [s.id for s in spawns if unfinished is None or s.id < unfinished]
            if not ids:
                return
            events = (
                await session.execute(
                    select(SpawnEvent.spawn_id, SpawnEvent.phase, SpawnEvent.time)
                    .where(SpawnEvent.spawn_id.in_(ids))
                    .order_by(SpawnEvent.spawn_id, SpawnEvent.id)
                )
            ).all()
        by_spawn: dict[int, list[tuple[str, datetime]]] = {}
        for sid, phase, t in events:
            by_spawn.setdefault(sid, []).append((phase, t))
        for s in spawns:
            if s.id not in ids:
                continue
            outcome = s.outcome or "unknown"
            evs = by_spawn.get(s.id, [])
            for (phase, t0), (_, t1) in itertools.pairwise(evs):
                self.spawn_phase.labels(phase=phase, outcome=outcome).observe(
                    max(0.0, (t1 - t0).total_seconds())
                )
            if s.finished is not None:
                self.spawn_total.labels(outcome=outcome).observe(
                    max(0.0, (s.finished - s.requested).total_seconds())
                )
        self._last_spawn_id = max(ids)

    async def render(self, source: HasStorage) -> bytes:
        async with source.storage.session() as session:
            counts = dict(
                (await session.execute(select(Server.status, func.count()).group_by(Server.status))).all()
            )
        self.running.set(counts.get(ServerStatus.RUNNING, 0))
        self.pending.set(counts.get(ServerStatus.STARTING, 0))
        # queued rows in the DB cover every hub process (the in-memory queue only this one)
        self.queue.set(counts.get(ServerStatus.QUEUED, 0))
        await self._observe_spawns(source)
        return generate_latest(self.registry)
