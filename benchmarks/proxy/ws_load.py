"""Websocket load client: N connections x M echo round trips, or connect/disconnect churn. Prints JSON.

Usage: ws_load.py echo URL CONNS ROUNDS | ws_load.py churn URL CYCLES CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvloop
from websockets.asyncio.client import connect


async def echo(url: str, conns: int, rounds: int) -> dict[str, float]:
    latencies: list[float] = []
    ready = asyncio.Event()
    opened = 0
    failures = 0

    async def one() -> None:
        nonlocal opened, failures
        try:
            async with connect(url, compression=None, max_queue=None, open_timeout=30) as ws:
                opened += 1
                if opened == conns:
                    ready.set()
                await ready.wait()
                payload = "x" * 64
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    await ws.send(payload)
                    await ws.recv()
                    latencies.append(time.perf_counter() - t0)
        except Exception:
            failures += 1
            ready.set()

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(one()) for _ in range(conns)]
    await ready.wait()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {
        "messages": n,
        "failures": failures,
        "seconds": wall,
        "connect_seconds": start - t0,
        "msgs_per_s": n / wall if wall else 0.0,
        "p50_ms": latencies[n // 2] * 1000 if n else -1,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else -1,
    }


async def churn(url: str, cycles: int, concurrency: int) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with sem:
            try:
                async with connect(url, compression=None, open_timeout=30) as ws:
                    await ws.send("hi")
                    await ws.recv()
            except Exception:
                failures += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(cycles)))
    return {"cycles": cycles, "failures": failures, "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    mode, url, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = uvloop.run(echo(url, a, b) if mode == "echo" else churn(url, a, b))
    print(json.dumps(result))
