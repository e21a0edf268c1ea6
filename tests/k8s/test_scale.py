"""500 simultaneous spawns complete within the queue's limit, over one watch per resource kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from .scale import run_scale

pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(900)]


async def test_500_simultaneous_spawns(tmp_path: Path) -> None:
    result = await run_scale(tmp_path, n=500, limit=50, pull_seconds=1.0)
    print(result)
    assert result.outcomes == {"ready": 500}
    # the engine's concurrency limit, seen from the cluster: with 1 s pulls it is reached, never exceeded
    assert 40 <= result.max_starting <= 50
    assert result.max_queue_position > 0  # later requests really waited in the FIFO queue
    assert result.watch_max_active == {"pods": 1, "events": 1}
    # one watch per kind, plus at most a few resumptions (watch timeouts) over the run
    assert result.watch_requests["pods"] <= 5 and result.watch_requests["events"] <= 5
    # no polling: pods are read via the watch, not GET per pod
    assert result.api_requests.get("GET pods", 0) <= 5
