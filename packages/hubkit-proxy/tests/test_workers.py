"""``--workers N``: SO_REUSEPORT data-plane processes behind one master that owns the API and the journal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import Backend, ProxyProc, make_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def worker_pids(p: ProxyProc) -> list[int]:
    assert p.proc is not None
    return sorted(c.pid for c in psutil.Process(p.proc.pid).children())


def worker_requests(p: ProxyProc) -> list[float]:
    text = httpx.get(p.api_url + "/metrics", timeout=5).text
    return [
        float(x.split()[-1]) for x in text.splitlines() if x.startswith("hubkit_proxy_worker_requests_total{")
    ]


async def fresh_connections(p: ProxyProc, path: str, n: int) -> list[int]:
    """``n`` requests, each on a new connection (the kernel picks a worker per connection)."""
    statuses = []
    for _ in range(n):
        async with httpx.AsyncClient() as c:
            statuses.append((await c.get(p.url + path, headers={"Connection": "close"})).status_code)
    return statuses


async def wait_for(check: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.1)


async def test_route_changes_reach_every_worker(backend: Backend, proxy_factory: list[ProxyProc]) -> None:
    p = make_proxy("hubkit", "--workers", "2")
    p.start()
    proxy_factory.append(p)
    assert len(worker_pids(p)) == 2
    async with httpx.AsyncClient(headers=p.auth) as c:
        assert (
            await c.post(p.api_url + "/api/routes/user/w", json={"target": backend.url})
        ).status_code == 201
    assert set(await fresh_connections(p, "/user/w/x", 40)) == {200}
    await wait_for(lambda: sum(worker_requests(p)) == 40)
    assert all(n > 0 for n in worker_requests(p)), worker_requests(p)  # both workers served
    async with httpx.AsyncClient(headers=p.auth) as c:
        assert (await c.delete(p.api_url + "/api/routes/user/w")).status_code == 204
    assert set(await fresh_connections(p, "/user/w/x", 20)) == {404}
    # activity seen by the workers reaches the master's API within about a report interval
    async with httpx.AsyncClient(headers=p.auth) as c:
        await c.post(p.api_url + "/api/routes/user/v", json={"target": backend.url})
        before = (await c.get(p.api_url + "/api/routes/user/v")).json()["last_activity"]
        await asyncio.sleep(0.05)
        await fresh_connections(p, "/user/v/y", 3)
        await asyncio.sleep(2.2)
        after = (await c.get(p.api_url + "/api/routes/user/v")).json()["last_activity"]
    assert after > before


async def test_dead_worker_is_replaced_with_the_whole_table(
    backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    p = make_proxy("hubkit", "--workers", "2")
    p.start()
    proxy_factory.append(p)
    async with httpx.AsyncClient(headers=p.auth) as c:
        for i in range(20):
            await c.post(p.api_url + f"/api/routes/user/u{i}", json={"target": backend.url})
    first, second = worker_pids(p)
    os.kill(first, signal.SIGKILL)
    await wait_for(lambda: len(worker_pids(p)) == 2 and first not in worker_pids(p))
    await asyncio.sleep(0.5)
    assert set(await fresh_connections(p, "/user/u19/x", 30)) == {200}
    assert second in worker_pids(p)


async def test_master_killed_journal_consistent_workers_gone(
    tmp_path: Path, backend: Backend, proxy_factory: list[ProxyProc]
) -> None:
    state = tmp_path / "routes.jsonl"
    p = make_proxy("hubkit", "--workers", "2", "--state-file", str(state))
    p.start()
    proxy_factory.append(p)
    async with httpx.AsyncClient(headers=p.auth) as c:
        for i in range(30):
            await c.post(
                p.api_url + f"/api/routes/user/j{i}", json={"target": backend.url, "jupyterhub": True}
            )
        for i in range(0, 30, 3):
            await c.delete(p.api_url + f"/api/routes/user/j{i}")
        want = (await c.get(p.api_url + "/api/routes")).json()
    workers = worker_pids(p)
    p.kill()  # SIGKILL to the master
    await wait_for(
        lambda: not any(psutil.pid_exists(w) and psutil.Process(w).status() != "zombie" for w in workers), 10
    )
    table: dict[str, object] = {}
    for line in state.read_text().splitlines():  # one writer (the master): a clean, replayable journal
        entry = json.loads(line)
        if "r" in entry:
            table.pop(entry["r"], None)
        else:
            table[entry["a"]] = entry["d"]
    assert set(table) == set(want)
    p.start()  # restarted on the same ports: the journal brings the table back
    async with httpx.AsyncClient(headers=p.auth) as c:
        assert set((await c.get(p.api_url + "/api/routes")).json()) == set(want)
    assert set(await fresh_connections(p, "/user/j1/x", 10)) == {200}
