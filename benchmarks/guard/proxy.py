"""Proxy rows of the regression guard: hubkit-proxy's CPU time per small request, per 1 MiB response and per
websocket message, under short bounded loads (about 40 s in all).

The proxy is one ``hubkit-proxy`` process as the hub launches it (journal on, uvloop); the backend is nginx and
the websocket echo server from benchmarks/proxy. Each load runs three times and the median is kept.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))

from measure import tree_cpu, wrk, ws_load
from rows import Row
from stack import Stack

REPEATS = 3


def measure(seconds: int = 4) -> list[Row]:
    stack = Stack(Path(tempfile.mkdtemp(prefix="guard-proxy-")))
    try:
        stack.start_backends()
        t = stack.add_target("hubkit-proxy")
        url = stack.http_url("hubkit-proxy")
        wrk(url + "/small", 1)  # warm up
        small, big, ws = [], [], []
        for _ in range(REPEATS):
            cpu0 = tree_cpu(t.pid)
            n = wrk(url + "/small", seconds)["requests"]
            small.append(1e6 * (tree_cpu(t.pid) - cpu0) / n)
            cpu0 = tree_cpu(t.pid)
            n = wrk(url + "/1m.bin", seconds)["requests"]
            big.append(1e6 * (tree_cpu(t.pid) - cpu0) / n)
            cpu0 = tree_cpu(t.pid)
            msgs = ws_load("echo", stack.ws_url("hubkit-proxy"), 100, 100)["messages"]
            ws.append(1e6 * (tree_cpu(t.pid) - cpu0) / msgs)
    finally:
        stack.stop()
    load = f"wrk -t2 -c50 -d{seconds}s"
    return [
        Row(
            "proxy.small_get_cpu_us",
            statistics.median(small),
            "us of proxy CPU per request",
            f"hubkit-proxy, 1 process, 23-byte GETs from nginx ({load}), median of {REPEATS}",
            small,
        ),
        Row(
            "proxy.1mib_get_cpu_us",
            statistics.median(big),
            "us of proxy CPU per response",
            f"hubkit-proxy, 1 process, 1 MiB GETs from nginx ({load}), median of {REPEATS}",
            big,
        ),
        Row(
            "proxy.ws_echo_cpu_us",
            statistics.median(ws),
            "us of proxy CPU per message",
            f"hubkit-proxy, 1 process, websocket echo, 100 connections x 100 round trips, median of {REPEATS}",
            ws,
        ),
    ]
