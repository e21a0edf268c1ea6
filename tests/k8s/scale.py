"""Many simultaneous spawns through the hub's real spawn engine (FIFO queue, concurrency limit) and the real
API server, scheduler and controller manager, with the node agent (stand-in) as the kubelets of ``nodes``
nodes. Shared by ``test_scale.py`` (a bounded check) and ``benchmarks/k8s/bench_spawns.py`` (2,000 users).

Everything is counted by the API server itself: its ``/metrics`` (requests by verb, whole cluster) and its
audit log (the hub's own requests by verb and resource, its watches and how many were open at once, and when
each pod was created and reported running, which gives how many were starting at once)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hubkit_spawn_k8s.testing import ControlPlane
from hubkit_spawn_k8s.testing.helpers import Namespace
from hubkit_spawn_k8s.testing.nodeagent import node_agent_process

_METRIC = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$')


def requests_by_verb(metrics: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in metrics.splitlines():
        m = _METRIC.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[labels.get("verb", "?")] += int(float(m.group(2)))
    return out


def _t(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class ScaleResult:
    n: int
    limit: int
    nodes: int
    seconds: float
    request_seconds: float
    outcomes: dict[str, int]
    max_queue_position: int
    max_starting: int
    hub_cpu_seconds: float
    hub_requests: dict[str, int]  # from the first request until all were ready
    hub_stop_requests: dict[str, int]  # from then until every pod was gone
    hub_watches: dict[str, int]
    hub_max_open_watches: int
    apiserver_requests_by_verb: dict[str, int]
    stop_seconds: float
    kubernetes_version: str
    load_average: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _audit_figures(cluster: ControlPlane, hub_user: str, hub_start: float, since: float,
                   ready: float) -> tuple[Counter[str], Counter[str], Counter[str], int, int]:
    """The hub's requests from ``since`` (the burst) until ``ready`` and after it (the stops), its watches from
    ``hub_start`` (they open at startup)."""
    hub_calls: Counter[str] = Counter()
    stop_calls: Counter[str] = Counter()
    watches: Counter[str] = Counter()
    opened: list[tuple[float, int]] = []
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    for ev in cluster.audit_events():
        received = _t(ev["requestReceivedTimestamp"])
        if received < hub_start or (received < since and ev["verb"] != "watch"):
            continue
        ref = ev.get("objectRef") or {}
        res = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        user = (ev.get("user") or {}).get("username")
        stage = ev.get("stage")
        if user == hub_user:
            if ev["verb"] == "watch":
                # open from the request's arrival (the audit log writes ResponseStarted late) to its end
                if stage == "ResponseStarted":
                    watches[res] += 1
                    opened.append((received, 1))
                elif stage == "ResponseComplete":
                    opened.append((_t(ev["stageTimestamp"]), -1))
            elif stage == "ResponseComplete":
                (hub_calls if received < ready else stop_calls)[f"{ev['verb']} {res}"] += 1
        if stage != "ResponseComplete" or (ev.get("responseStatus") or {}).get("code", 200) >= 300:
            continue
        if user == hub_user and ev["verb"] == "create" and res == "pods":
            created[ref.get("name", "")] = _t(ev["stageTimestamp"])
        if res == "pods/status" and ev["verb"] == "patch":  # the node agent: the pod runs and is ready
            running.setdefault(ref.get("name", ""), _t(ev["stageTimestamp"]))
    depth = max_open = 0
    for _, step in sorted(opened):
        depth += step
        max_open = max(max_open, depth)
    edges = sorted([(t, 1) for t in created.values()] + [(t, -1) for n, t in running.items() if n in created])
    depth = max_starting = 0
    for _, step in edges:
        depth += step
        max_starting = max(max_starting, depth)
    return hub_calls, stop_calls, watches, max_open, max_starting


async def run_scale(cluster: ControlPlane, workdir: Path, n: int, limit: int, nodes: int) -> ScaleResult:
    from hubkit.runtime.hub import Hub
    from hubkit.storage.orm import User
    from hubkit.testing.plugin import make_settings
    from hubkit_spawn_k8s import plugin
    from sqlalchemy import insert

    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (before the hub runs)
    ns = Namespace.create(cluster, workdir, prefix="scale")
    hub_user = f"system:serviceaccount:{ns.name}:hubkit-hub"
    prefix = f"agent-{ns.name}"
    try:
        with node_agent_process(cluster.kubeconfig, nodes=nodes, pods=110, prefix=prefix,
                                log=workdir / "node-agent.log") as (_, agent_port, _names):
            settings = make_settings(
                workdir / "hub",
                hub={"db_url": f"sqlite+aiosqlite:///{workdir / 'hub.sqlite'}"},
                spawner={
                    "backend": "kubernetes", "concurrent_spawn_limit": limit, "poll_interval": 300,
                    "start_timeout": 1800, "http_timeout": 1800,
                    "backends": {"kubernetes": {
                        "kubeconfig": str(ns.kubeconfig), "namespace": ns.name, "image": "hubkit/none:1",
                        "port": agent_port, "watch_timeout": 600, "storage": {"enabled": False},
                        "readiness_probe": False, "node_selector": {"hubkit.io/node-agent": "true"},
                        "api_concurrency": 32, "delete_grace_period": 0,
                    }},
                },
            )
            hub = await Hub.create(settings, extra_plugins=[plugin], load_entry_points=False)
            hub_start = time.time()
            await hub.start()
            try:
                names = [f"user{i:05d}" for i in range(n)]
                async with hub.db() as s:
                    await s.execute(insert(User), [{"name": u, "cookie_id": secrets.token_hex(16)} for u in names])
                    await s.commit()
                before = requests_by_verb(cluster.metrics())
                since = time.time()
                cpu0 = time.process_time()
                t0 = time.monotonic()
                ids = list(await asyncio.gather(*(hub.spawns.request_start(u) for u in names)))
                requested = time.monotonic() - t0
                results = await asyncio.gather(*(hub.spawns.wait(i, 1800) for i in ids))
                seconds = time.monotonic() - t0
                ready_at = time.time()
                cpu = time.process_time() - cpu0
                after = requests_by_verb(cluster.metrics())
                max_pos = 0
                for sid in ids[-5:]:  # the last ones requested waited longest in the queue
                    async for _, ev in hub.spawns.events(sid):
                        max_pos = max(max_pos, ev.queue_position or 0)
                outcomes = Counter(str(r) for r in results)
                t1 = time.monotonic()
                await asyncio.gather(*(hub.spawns.stop(u) for u in names))
                for _ in range(3600):  # bounded: 30 min; stopping ends when the API server has no pod (and no
                    # token Secret) of this hub left
                    left = [cluster.ok("GET", f"/api/v1/namespaces/{ns.name}/{kind}?limit=1&labelSelector="
                                              f"hubkit.io%2Fcomponent%3Dsingleuser-server")["items"]
                            for kind in ("pods", "secrets")]
                    if not any(left):
                        break
                    await asyncio.sleep(0.5)
                stop_seconds = time.monotonic() - t1
            finally:
                await hub.stop()
            hub_calls, stop_calls, watches, max_open, max_starting = _audit_figures(
                cluster, hub_user, hub_start, since, ready_at)
            return ScaleResult(
                n=n, limit=limit, nodes=nodes, seconds=seconds, request_seconds=requested,
                outcomes=dict(outcomes), max_queue_position=max_pos, max_starting=max_starting,
                hub_cpu_seconds=cpu, hub_requests=dict(hub_calls), hub_stop_requests=dict(stop_calls),
                hub_watches=dict(watches),
                hub_max_open_watches=max_open,
                apiserver_requests_by_verb={k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)},
                stop_seconds=stop_seconds, kubernetes_version=cluster.version,
            )
    finally:
        for i in range(nodes):
            cluster.request("DELETE", f"/api/v1/nodes/{prefix}-{i}")
        ns.delete()
