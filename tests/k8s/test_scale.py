"""60 simultaneous spawns through the real API server stay within the queue's limit over one watch per
resource kind (a bounded check of behaviour; benchmarks/k8s/bench_spawns.py runs 2,000 and measures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubkit_spawn_k8s.testing import ControlPlane

from .scale import run_scale

pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(300)]


async def test_60_simultaneous_spawns(cluster: ControlPlane, tmp_path: Path) -> None:
    result = await run_scale(cluster, tmp_path, n=60, limit=10, nodes=2)
    print(result)
    assert result.outcomes == {"ready": 60}
    # the engine's concurrency limit, seen from the API server: never exceeded
    assert 0 < result.max_starting <= 10
    assert result.max_queue_position > 0  # later requests really waited in the FIFO queue
    # one watch per kind for all 60 servers, never more open at once, plus at most a resumption or two
    assert set(result.hub_watches) == {"pods", "events"}
    assert result.hub_max_open_watches == 2
    assert all(v <= 3 for v in result.hub_watches.values()), result.hub_watches
    # no polling: no GET or LIST of pods per server
    assert result.hub_requests.get("get pods", 0) == 0
    assert result.hub_requests.get("list pods", 0) <= 3
    assert result.hub_requests["create pods"] == 60 and result.hub_stop_requests["delete pods"] == 60
