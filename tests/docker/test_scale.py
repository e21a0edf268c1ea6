"""Twenty containers requested at once: all become ready through the FIFO queue, then all stop cleanly.

Speed is not asserted here (benchmarks/docker/spawn_burst.py measures it); behaviour is: queue positions are
reported, nothing fails, every server is routed and answers, and stopping leaves no container behind.
"""

from __future__ import annotations

import asyncio
import time

import docker
import httpx
import pytest
from hubkit_tests_docker_hubctl import burst_start, containers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]
N = 20
LIMIT = 5


def test_twenty_at_once_within_queue_limit(make_hub, dclient: docker.DockerClient) -> None:
    users = [f"u{i:02d}" for i in range(N)]
    with (
        make_hub(spawner={"concurrent_spawn_limit": LIMIT}) as hub,
        httpx.Client(base_url=hub.url, timeout=60) as c,
    ):
        admin = {"Authorization": f"token {hub.token('admin')}"}
        assert c.post("/hub/api/users", json={"usernames": users}, headers=admin).status_code == 201
        burst = asyncio.run(burst_start(hub.url, admin, users, limit=600))
        assert all(code in (201, 202) for code in burst.statuses.values()), burst.statuses
        print(f"{N} containers ready in {burst.seconds:.1f} s (concurrent_spawn_limit={LIMIT})")

        # Requests beyond the limit waited in the FIFO queue, were told their position, which only moved
        # forward, and then went through every phase to ready.
        queued = {}
        for u, events in burst.watched.items():
            assert events and events[-1].get("ready"), (u, burst.watch_status, events)
            assert any("Creating container" in e["message"] for e in events), events
            positions = [e["queue_position"] for e in events if e.get("queue_position")]
            assert positions == sorted(positions, reverse=True), (u, positions)
            if positions:
                queued[u] = positions
        assert len(queued) >= N - LIMIT, queued
        assert max(p[0] for p in queued.values()) >= N - LIMIT, queued
        routes = hub.routes()
        for u in users:
            assert f"/user/{u}" in routes
            assert c.get(f"/user/{u}/api").status_code == 200
        assert len([ct for ct in containers(dclient, hub.hub_id) if ct.status == "running"]) == N

        for u in users:
            assert c.delete(f"/hub/api/users/{u}/server", headers=admin).status_code in (202, 204)
        deadline = time.monotonic() + 180
        while containers(dclient, hub.hub_id):
            assert time.monotonic() < deadline, hub.log()[-3000:]
            time.sleep(0.5)
