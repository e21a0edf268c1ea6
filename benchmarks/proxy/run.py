"""Proxy benchmark: the backend directly vs real CHP (npm) vs hubkit-proxy, all measured in one run.

Needs: nginx, wrk (Debian), node + configurable-http-proxy (npm, see tests), /work/venv with hubkit-proxy.
Usage: python benchmarks/proxy/run.py [--duration 10] [--http-requests 1000000] [--json out.json] [--md out.md]
Every load is bounded: wrk runs for --duration seconds, the 1M-request leak run is capped by --leak-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def chp_bin() -> str:
    found = os.environ.get("HUBKIT_CHP_BIN") or str(
        ROOT / ".cache/npm/node_modules/.bin/configurable-http-proxy"
    )
    if not os.path.exists(found):
        raise SystemExit(
            f"CHP not found at {found}: npm install --no-save --prefix {ROOT}/.cache/npm configurable-http-proxy@5"
        )
    return found


# ---------------------------------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, seconds: int, conns: int = 50, threads: int = 2) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    res: dict[str, float] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = float(m.group(1))
    for pct in ("50", "99"):
        if m := re.search(rf"\s{pct}%\s+(\S+)", out):
            res[f"p{pct}_ms"] = _ms(m.group(1))
    res["non2xx"] = float(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0.0
    res["socket_errors"] = (
        float(sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", m.group(0))))
        if (m := re.search(r"Socket errors:.*", out))
        else 0.0
    )
    return res


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median req/s, plus every run's req/s and p99 for the record."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    mid = dict(ordered[len(ordered) // 2])
    mid["all_rps"] = [r["rps"] for r in runs]  # type: ignore[assignment]
    mid["all_p99_ms"] = [r["p99_ms"] for r in runs]  # type: ignore[assignment]
    return mid


def proc_stats(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/statm") as fh:
        rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"rss_mib": rss / (1 << 20), "fds": float(len(os.listdir(f"/proc/{pid}/fd")))}


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far (the proxy's own cost of a load run)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ws_load(*args: Any) -> dict[str, float]:
    out = subprocess.run(
        [PY, str(HERE / "ws_load.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


async def add_routes(api: str, token: str, n: int, target: str, concurrency: int = 10) -> float:
    """POST n routes with JupyterHub's request concurrency (10); returns seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {"target": target, "user": f"u{i}", "server_name": "", "jupyterhub": True}
            r = await client.post(f"{api}/api/routes/user/u{i}", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"route add failed: {r.status_code}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        headers={"Authorization": f"token {token}"}, limits=limits, timeout=30
    ) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - t0


def get_routes_latency(api: str, token: str, times: int = 10) -> dict[str, float]:
    samples = []
    with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as c:
        for _ in range(times):
            t0 = time.perf_counter()
            r = c.get(api + "/api/routes")
            samples.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        count = len(r.json())
    return {"median_ms": statistics.median(samples), "max_ms": max(samples), "routes": float(count)}


# ---------------------------------------------------------------------------------------------------------------
class Stack:
    """nginx + ws echo backend, and the two proxies in front of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = secrets.token_hex(16)
        self.backend_port = free_port()
        self.ws_port = free_port()
        # "-10k" twins get the 10,000 routes, so 1-route and 10k-route figures can be taken in alternation
        names = ("chp", "hubkit-proxy", "chp-10k", "hubkit-proxy-10k")
        self.ports = {name: (free_port(), free_port()) for name in names}
        self.pids: dict[str, int] = {}

    def spawn(self, cmd: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, hubkit_args: list[str]) -> None:
        os.chmod(self.tmp, 0o755)  # nginx workers run as an unprivileged user
        (self.tmp / "www").mkdir(mode=0o755)
        (self.tmp / "www/1m.bin").write_bytes(os.urandom(1 << 20))
        conf = (
            (HERE / "nginx.conf.tmpl")
            .read_text()
            .replace("{dir}", str(self.tmp))
            .replace("{port}", str(self.backend_port))
        )
        (self.tmp / "nginx.conf").write_text(conf)
        self.spawn(["nginx", "-c", str(self.tmp / "nginx.conf"), "-p", str(self.tmp)], "nginx")
        self.pids["ws_echo"] = self.spawn([PY, str(HERE / "ws_echo.py"), str(self.ws_port)], "ws_echo").pid
        env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)
        backend = f"http://127.0.0.1:{self.backend_port}"
        for name, (port, api) in self.ports.items():
            common = [
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--api-ip",
                "127.0.0.1",
                "--api-port",
                str(api),
                "--default-target",
                backend,
            ]
            if name.startswith("chp"):
                cmd = [chp_bin(), *common, "--log-level", "warn"]
            else:  # with its journal, as the embedded default runs it
                state = ["--state-file", str(self.tmp / f"{name}.jsonl")]
                cmd = [PY, "-m", "hubkit_proxy", *common, "--log-level", "warning", *state, *hubkit_args]
            self.pids[name] = self.spawn(cmd, name, env).pid
        for port in (self.backend_port, self.ws_port, *(p for pair in self.ports.values() for p in pair)):
            wait_port(port)
        for _name, (_port, api) in self.ports.items():
            r = httpx.post(
                f"http://127.0.0.1:{api}/api/routes/ws",
                json={"target": f"http://127.0.0.1:{self.ws_port}"},
                headers={"Authorization": f"token {self.token}"},
            )
            r.raise_for_status()

    def http_url(self, name: str) -> str:
        port = self.backend_port if name == "direct" else self.ports[name][0]
        return f"http://127.0.0.1:{port}"

    def ws_url(self, name: str) -> str:
        return (
            f"ws://127.0.0.1:{self.ws_port}/ws"
            if name == "direct"
            else f"ws://127.0.0.1:{self.ports[name][0]}/ws"
        )

    def api(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name][1]}"

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="proxybench-"))
    stack = Stack(tmp)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "settings": {"duration_s": args.duration, "connections": 50, "hubkit_args": args.hubkit_args},
    }
    names = ["direct", "chp", "hubkit-proxy"]
    proxies = ["chp", "hubkit-proxy"]
    try:
        stack.start(args.hubkit_args.split() if args.hubkit_args else [])
        for name in names:  # warm up
            wrk(stack.http_url(name) + "/small", 2)
        phases = set(args.phases.split(","))
        print("# HTTP", flush=True)
        for label, path in (("small", "/small"), ("1mib", "/1m.bin")) if "http" in phases else ():
            for name in names:
                r = wrk(stack.http_url(name) + path, args.duration)
                results.setdefault(f"http_{label}", {})[name] = r
                print(f"{label:6} {name:13} {r}", flush=True)
        print("# websocket echo", flush=True)
        ws_runs: dict[str, list[dict[str, float]]] = {}
        for i in range(args.ws_repeats if "ws" in phases else 0):  # rotate the order: load drifts over time
            for name in names[i % 3 :] + names[: i % 3]:
                pid = stack.pids.get(name)
                cpu0, echo0, t0 = proc_cpu(pid) if pid else 0.0, proc_cpu(stack.pids["ws_echo"]), os.times()
                r = ws_load("echo", stack.ws_url(name), args.ws_conns, args.ws_rounds)
                t1 = os.times()
                r["proxy_cpu_s"] = proc_cpu(pid) - cpu0 if pid else 0.0
                r["echo_cpu_s"] = proc_cpu(stack.pids["ws_echo"]) - echo0
                r["client_cpu_s"] = t1.children_user + t1.children_system - t0.children_user - t0.children_system
                r["loadavg"] = os.getloadavg()[0]
                ws_runs.setdefault(name, []).append(r)
                print(f"ws     {name:13} {r}", flush=True)
        for name, runs in ws_runs.items():
            best = sorted(runs, key=lambda r: r["msgs_per_s"])[len(runs) // 2]
            results.setdefault("ws_echo", {})[name] = best
        if ws_runs and args.ws_repeats > 1:
            results["ws_runs"] = ws_runs
        print("# leaks (before the route table grows)", flush=True)
        for name in proxies if "leaks" in phases else []:
            pid = stack.pids[name]
            before = proc_stats(pid)
            churn = ws_load("churn", stack.ws_url(name), args.ws_cycles, 50)
            total, started = 0.0, time.monotonic()
            cap = args.chp_leak_seconds if name == "chp" else args.leak_seconds
            while total < args.http_requests and time.monotonic() - started < cap:
                left = cap - (time.monotonic() - started)
                total += wrk(stack.http_url(name) + "/small", max(1, min(30, int(left))))["requests"]
            time.sleep(7)  # idle keep-alive and pool timeouts (5 s) run out
            after = proc_stats(pid)
            results.setdefault("leaks", {})[name] = {
                "before": before,
                "after": after,
                "ws_churn": churn,
                "http_requests": total,
                "http_seconds": time.monotonic() - started - 7,
                "rss_growth_pct": 100 * (after["rss_mib"] - before["rss_mib"]) / before["rss_mib"],
            }
            print(f"leak   {name:13} {results['leaks'][name]}", flush=True)
        print("# route table", flush=True)
        for name in proxies if "routes" in phases else []:
            many_name = f"{name}-10k"
            add_s = asyncio.run(
                add_routes(stack.api(many_name), stack.token, args.routes, stack.http_url("direct"))
            )
            get = get_routes_latency(stack.api(many_name), stack.token)
            ones, manys = [], []
            for _ in range(3):  # alternate, so load from other machine users hits both alike
                ones.append(wrk(stack.http_url(name) + "/user/u5000/x", args.route_duration))
                manys.append(wrk(stack.http_url(many_name) + "/user/u5000/x", args.route_duration))
            results.setdefault("routes", {})[name] = {
                "add_seconds": add_s,
                "get_routes": get,
                "data_path_1_route": _median_run(ones),
                "data_path_many_routes": _median_run(manys),
            }
            print(f"routes {name:13} {results['routes'][name]}", flush=True)
    finally:
        stack.stop()
        results["machine"]["loadavg_end"] = os.getloadavg()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def markdown(res: dict[str, Any]) -> str:
    def f(x: float, nd: int = 1) -> str:
        return f"{x:,.{nd}f}"

    lines = [
        f"Machine: {res['machine']['cpus']} CPUs (shared), load average at start "
        f"{res['machine']['loadavg_start'][0]:.2f}, at end {res['machine']['loadavg_end'][0]:.2f}. "
        f"wrk -t2 -c50 -d{res['settings']['duration_s']}s. hubkit-proxy flags: `{res['settings']['hubkit_args'] or '(none)'}`.",
        "",
        "| test | target | req/s or msg/s | p50 ms | p99 ms | vs CHP | vs direct |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, label, rate in (
        ("http_small", "HTTP small", "rps"),
        ("http_1mib", "HTTP 1 MiB", "rps"),
        ("ws_echo", "WS echo 200x200", "msgs_per_s"),
    ):
        rows = res.get(key, {})
        chp = rows.get("chp", {}).get(rate) or float("nan")
        direct = rows.get("direct", {}).get(rate) or float("nan")
        for name, r in rows.items():
            lines.append(
                f"| {label} | {name} | {f(r[rate])} | {f(r['p50_ms'], 2)} | {f(r['p99_ms'], 2)} | "
                f"{r[rate] / chp:.2f}x | {100 * r[rate] / direct:.0f}% |"
            )
    ws_runs = res.get("ws_runs", {})
    if ws_runs:
        lines += [
            "",
            f"Websocket rows above are the median of {len(next(iter(ws_runs.values())))} runs, target order rotated:",
            "",
            "| target | msg/s per run | proxy CPU s per run | client + echo CPU s per run | load average after each |",
            "|---|---|---|---|---|",
        ]
        for name, runs in ws_runs.items():
            lines.append(
                f"| {name} | {', '.join(f(r['msgs_per_s'], 0) for r in runs)} | "
                f"{', '.join(f(r['proxy_cpu_s'], 2) for r in runs) if name != 'direct' else '-'} | "
                f"{', '.join(f(r['client_cpu_s'] + r['echo_cpu_s'], 2) for r in runs)} | "
                f"{', '.join(f(r['loadavg'], 2) for r in runs)} |"
            )
    lines += ["", "| route table | CHP | hubkit-proxy |", "|---|---:|---:|"]
    rt = res.get("routes", {})
    if rt:
        c, h = rt["chp"], rt["hubkit-proxy"]
        n = int(h["get_routes"]["routes"])
        lines += [
            f"| add {n - 2:,} routes (10 concurrent POSTs), s | {f(c['add_seconds'], 2)} | {f(h['add_seconds'], 2)} |",
            f"| GET /api/routes at {n:,} routes, median ms | {f(c['get_routes']['median_ms'])} | {f(h['get_routes']['median_ms'])} |",
            f"| data path, 2 routes: req/s / p99 ms (median of 3 alternating runs) | {f(c['data_path_1_route']['rps'], 0)} / {f(c['data_path_1_route']['p99_ms'], 2)} | "
            f"{f(h['data_path_1_route']['rps'], 0)} / {f(h['data_path_1_route']['p99_ms'], 2)} |",
            f"| data path, {n:,} routes: req/s / p99 ms (median of 3) | {f(c['data_path_many_routes']['rps'], 0)} / {f(c['data_path_many_routes']['p99_ms'], 2)} | "
            f"{f(h['data_path_many_routes']['rps'], 0)} / {f(h['data_path_many_routes']['p99_ms'], 2)} |",
        ]
    lk = res.get("leaks", {})
    if lk:
        lines += [
            "",
            "| leaks | RSS before MiB | RSS after MiB | growth | fds before | fds after | WS cycles (failed) | HTTP requests |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in lk.items():
            lines.append(
                f"| {name} | {f(r['before']['rss_mib'])} | {f(r['after']['rss_mib'])} | {r['rss_growth_pct']:+.1f}% | "
                f"{int(r['before']['fds'])} | {int(r['after']['fds'])} | {r['ws_churn']['cycles']:,} ({r['ws_churn']['failures']}) | "
                f"{int(r['http_requests']):,} in {r['http_seconds']:.0f} s |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--ws-conns", type=int, default=200)
    p.add_argument("--ws-rounds", type=int, default=200)
    p.add_argument("--ws-repeats", type=int, default=1, help="alternating websocket runs; the median is kept")
    p.add_argument("--ws-cycles", type=int, default=10_000)
    p.add_argument("--http-requests", type=int, default=1_000_000)
    p.add_argument("--leak-seconds", type=int, default=300, help="cap on hubkit-proxy's 1M-request run")
    p.add_argument("--chp-leak-seconds", type=int, default=150, help="cap on CHP's 1M-request run")
    p.add_argument(
        "--route-duration", type=int, default=5, help="seconds per wrk run in the route-table test"
    )
    p.add_argument("--routes", type=int, default=10_000)
    p.add_argument("--hubkit-args", default="", help="extra hubkit-proxy flags, e.g. '--workers 2'")
    p.add_argument("--phases", default="http,ws,leaks,routes", help="comma-separated subset to run")
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        raise SystemExit("needs wrk and nginx (apt-get install wrk nginx)")
    res = run(args)
    md = markdown(res)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.md:
        args.md.write_text(md)


if __name__ == "__main__":
    main()
