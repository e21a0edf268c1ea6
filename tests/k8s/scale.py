"""Many simultaneous spawns through the hub's real spawn engine (FIFO queue, concurrency limit) against the
fake API server; shared by ``test_scale.py`` and ``benchmarks/k8s/bench_spawns.py``.

Measured from the cluster's side: how many pods were starting at once (must stay within the queue's
limit), and how many watch connections the hub opened per resource kind (one each)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubkit_spawn_k8s.testing import FakeImage, FakeKubernetes

TINY = "hubkit/tiny:1"


@dataclass
class ScaleResult:
    n: int
    limit: int
    pull_seconds: float
    seconds: float
    request_seconds: float
    outcomes: dict[str, int]
    max_starting: int
    max_queue_position: int
    watch_max_active: dict[str, int]
    watch_requests: dict[str, int]
    api_requests: dict[str, int]


class _StartingCounter:
    """Pods that exist but are not ready yet, i.e. spawns the engine let out of its queue."""

    def __init__(self) -> None:
        self.starting: set[str] = set()
        self.max = 0

    def __call__(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        if resource != "pods":
            return
        name = obj["metadata"]["name"]
        statuses = obj.get("status", {}).get("containerStatuses") or [{}]
        if kind == "ADDED":
            self.starting.add(name)
        elif kind == "DELETED" or statuses[0].get("ready"):
            self.starting.discard(name)
        self.max = max(self.max, len(self.starting))


async def run_scale(workdir: Path, n: int, limit: int, pull_seconds: float = 0.02) -> ScaleResult:
    """``pull_seconds``: how long the fake image pull takes, i.e. how long each pod stays starting."""
    from hubkit.runtime.hub import Hub
    from hubkit.storage.orm import User
    from hubkit.testing.plugin import make_settings
    from hubkit_spawn_k8s import plugin
    from sqlalchemy import insert

    with FakeKubernetes(workdir / "cluster", images=[FakeImage(TINY, runtime="http")], schema_validation=False) as kube:
        counter = _StartingCounter()
        kube.call(lambda: kube.cluster.store.listeners.append(counter))
        kube.cluster.timing.pull = pull_seconds
        settings = make_settings(
            workdir / "hub",
            spawner={
                "backend": "kubernetes", "concurrent_spawn_limit": limit, "poll_interval": 60,
                "start_timeout": 900, "http_timeout": 900,
                "backends": {"kubernetes": {"kubeconfig": kube.write_kubeconfig(workdir / "kubeconfig"),
                                            "image": TINY, "port": 18888, "watch_timeout": 60,
                                            "storage": {"enabled": False}, "readiness_probe": False}},
            },
        )
        hub = await Hub.create(settings, extra_plugins=[plugin], load_entry_points=False)
        await hub.start()
        try:
            names = [f"user{i:04d}" for i in range(n)]
            async with hub.db() as s:
                await s.execute(insert(User), [{"name": u, "cookie_id": secrets.token_hex(16)} for u in names])
                await s.commit()
            t0 = time.monotonic()
            ids = list(await asyncio.gather(*(hub.spawns.request_start(u) for u in names)))
            requested = time.monotonic() - t0
            results = await asyncio.gather(*(hub.spawns.wait(i, 900) for i in ids))
            seconds = time.monotonic() - t0
            max_pos = 0
            for sid in ids[-5:]:  # the last ones requested waited longest in the queue
                async for _, ev in hub.spawns.events(sid):
                    max_pos = max(max_pos, ev.queue_position or 0)
            outcomes: dict[str, int] = {}
            for r in results:
                outcomes[str(r)] = outcomes.get(str(r), 0) + 1
            stats = {k: kube.watch_stats(k) for k in ("pods", "events")}
            result = ScaleResult(
                n=n, limit=limit, pull_seconds=pull_seconds, seconds=seconds, request_seconds=requested, outcomes=outcomes, max_starting=counter.max,
                max_queue_position=max_pos,
                watch_max_active={k: v.max_active for k, v in stats.items()},
                watch_requests={k: v.total for k, v in stats.items()},
                api_requests=dict(kube.call(lambda: dict(kube.cluster.store.requests))),
            )
            await asyncio.gather(*(hub.spawns.stop(u) for u in names))
            return result
        finally:
            await hub.stop()
