"""Proxy benchmark: the backends directly vs configurable-http-proxy vs hubkit-proxy (1, 2, 4 worker processes)
vs nginx driven through hubkit-proxy's route API, all in one run.

Usage: python benchmarks/proxy/run.py [--rounds 3] [--duration 10] [--phases http,ws] [--md out.md]
Needs wrk and nginx (Debian), node + configurable-http-proxy (npm), the hubkit-proxy package; py-spy for the
optional ``profile`` phase. Every load is bounded: wrk runs --duration seconds, the websocket client a fixed
number of round trips. Each round measures every target once, the target order rotated between rounds, and
the raw JSON of the run is always written to benchmarks/results/proxy/ (with the commit and load averages).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/record.py

import record
from measure import tree_cpu, tree_memory, wrk, ws_load
from report import markdown
from stack import Stack, versions

DEFAULT_TARGETS = "chp,hubkit-proxy,hubkit-proxy-w2,hubkit-proxy-w4,nginx-plane"
HTTP_TESTS = {"small": "/small", "1mib": "/1m.bin"}


def rotated(names: list[str], i: int) -> list[str]:
    k = i % len(names)
    return names[k:] + names[:k]


def measure_http(stack: Stack, names: list[str], args: argparse.Namespace, out: dict[str, Any]) -> None:
    for name in names:  # warm up every target (connections, heaps) before anything counts
        wrk(stack.http_url(name) + "/small", 2)
    for test, path in HTTP_TESTS.items():
        runs = out.setdefault("http", {}).setdefault(test, [])
        for rnd in range(args.rounds):
            for name in rotated(names, rnd):
                pid = stack.targets[name].pid if name != "direct" else 0
                load = record.load1()
                cpu0 = tree_cpu(pid) if pid else 0.0
                r: dict[str, Any] = wrk(stack.http_url(name) + path, args.duration)
                cpu = tree_cpu(pid) - cpu0 if pid else 0.0
                r.update(round=rnd, target=name, loadavg=load, cpu_s=cpu)
                r["cpu_us_per_req"] = 1e6 * cpu / r["requests"] if pid and r["requests"] else None
                runs.append(r)
                print(
                    f"{test:6} r{rnd} {name:16} {r['rps']:10,.0f} req/s  cpu/req {r['cpu_us_per_req'] or 0:8.1f} us  load {load}",
                    flush=True,
                )


def measure_ws(stack: Stack, names: list[str], args: argparse.Namespace, out: dict[str, Any]) -> None:
    runs = out.setdefault("ws", [])
    for rnd in range(args.rounds):
        for name in rotated(names, rnd):
            pid = stack.targets[name].pid if name != "direct" else 0
            load = record.load1()
            cpu0 = tree_cpu(pid) if pid else 0.0
            r: dict[str, Any] = ws_load("echo", stack.ws_url(name), args.ws_conns, args.ws_rounds)
            cpu = tree_cpu(pid) - cpu0 if pid else 0.0
            r.update(round=rnd, target=name, loadavg=load, cpu_s=cpu)
            r["cpu_us_per_msg"] = 1e6 * cpu / r["messages"] if pid and r["messages"] else None
            runs.append(r)
            print(
                f"ws     r{rnd} {name:16} {r['msgs_per_s']:10,.0f} msg/s  failures {r['failures']}  load {load}",
                flush=True,
            )


async def add_routes(api: str, token: str, n: int, target: str, concurrency: int = 10) -> float:
    """POST ``n`` routes with JupyterHub's request concurrency (10); returns seconds."""
    todo = list(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        while todo:
            i = todo.pop()
            body = {"target": target, "user": f"u{i}", "server_name": "", "jupyterhub": True}
            r = await client.post(f"{api}/api/routes/user/u{i}", json=body)
            r.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}, limits=limits, timeout=30) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        return time.perf_counter() - t0


def measure_routes(stack: Stack, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """10,000 routes: adding them through the API, listing them, and the data path with them vs with 2."""
    res = out.setdefault("routes", {"count": args.routes})
    for name in ("chp", "hubkit-proxy"):
        many = stack.add_target(f"{name}-10k" if name == "chp" else "hubkit-proxy-10k")
        seconds = asyncio.run(
            add_routes(
                f"http://127.0.0.1:{many.api_port}", stack.token, args.routes, stack.http_url("direct")
            )
        )
        samples = []
        with httpx.Client(headers={"Authorization": f"token {stack.token}"}, timeout=60) as c:
            for _ in range(10):
                t0 = time.perf_counter()
                c.get(f"http://127.0.0.1:{many.api_port}/api/routes").raise_for_status()
                samples.append(1000 * (time.perf_counter() - t0))
        few, lots = [], []
        for _ in range(3):  # alternate, so the machine's other load hits both alike
            few.append(wrk(stack.http_url(name) + "/user/u5000/x", args.route_duration)["rps"])
            lots.append(wrk(f"http://127.0.0.1:{many.port}/user/u5000/x", args.route_duration)["rps"])
        res[name] = {"add_s": seconds, "list_ms": samples, "rps_2_routes": few, "rps_many_routes": lots}
        print(f"routes {name:13} {res[name]}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [t for t in args.targets.split(",") if t]
    phases = set(args.phases.split(","))
    out: dict[str, Any] = {
        "kind": "proxy",
        "commit": record.commit(),
        "machine": record.machine(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "wrk": "-t2 -c50",
            "ws_conns": args.ws_conns,
            "ws_rounds": args.ws_rounds,
            "targets": ["direct", *names],
            "phases": sorted(phases),
            "hubkit_args": args.hubkit_args,
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="proxybench-"))
    stack = Stack(tmp, args.hubkit_args.split())
    try:
        stack.start_backends()
        for name in names:
            stack.add_target(name)
        every = ["direct", *names]
        if "http" in phases:
            measure_http(stack, every, args, out)
        if "ws" in phases:
            measure_ws(stack, every, args, out)
        out["memory"] = {name: tree_memory(stack.targets[name].pid) for name in names}  # after the load
        if "profile" in phases:
            from profile_proxy import profile_all

            out["profile"] = profile_all(stack, "hubkit-proxy", args.profile_seconds)
        if "routes" in phases:
            measure_routes(stack, args, out)
    finally:
        stack.stop()
        out["machine"]["loadavg_end"] = list(record.machine()["loadavg"])
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="each target measured once per round, order rotated")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--targets", default=DEFAULT_TARGETS, help="comma-separated; 'direct' is always measured")
    p.add_argument("--phases", default="http,ws", help="http, ws, profile (py-spy), routes (10k routes)")
    p.add_argument("--ws-conns", type=int, default=200)
    p.add_argument("--ws-rounds", type=int, default=200)
    p.add_argument("--routes", type=int, default=10_000)
    p.add_argument("--route-duration", type=int, default=5)
    p.add_argument("--profile-seconds", type=int, default=8)
    p.add_argument("--hubkit-args", default="", help="extra flags for every hubkit-proxy target")
    p.add_argument("--md", type=Path, help="also write the markdown report here")
    args = p.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        raise SystemExit("needs wrk and nginx (apt-get install wrk nginx)")
    result = run(args)
    path = record.save("proxy", result)
    md = markdown(result, source=str(path.relative_to(record.ROOT)))
    print(md)
    print(f"raw results: {path}")
    if args.md:
        args.md.write_text(md)


if __name__ == "__main__":
    main()
