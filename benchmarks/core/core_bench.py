"""hubkit-core benchmarks: restart with many users and running servers, and a burst of concurrent spawns.

    python benchmarks/core/core_bench.py [--users 10000 50000] [--servers 1000] [--limit 100]

For each user count: a fresh SQLite hub gets N users; 1,000 of them start at once through the spawn engine
with the concurrent-spawn limit at 100 (stand-in spawner, in-process servers) -> time to all ready, errors, and
whether every queue position sequence only decreased. Then the hub is stopped (servers keep running) and a
new hub process object starts on the same database behind uvicorn -> time until /hub/health answers and until
all servers are re-adopted; the real ``hubkit`` command from exec to answering (an empty hub); one spawn alone,
request to ready. Raw results go to benchmarks/results/core/<stamp>.json (commit, load averages); the report in
docs/benchmarks/core.md is written from them, every sentence computed from those numbers
(``--docs-from STAMP`` writes it again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

import httpx
from hubkit.interfaces import Phase
from hubkit.runtime.app import create_app
from hubkit.runtime.hub import Hub
from hubkit.runtime.serve import serve_then_adopt
from hubkit.storage.orm import User
from hubkit.testing.plugin import make_settings
from hubkit.testing.processes import wait_bound_ports
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "core"


def commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def listening_socket() -> socket.socket:
    """Bound to port 0 and handed to the server: no other program can take the port between pick and bind."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def add_users(hub: Hub, n: int) -> None:
    rows = [
        {"name": f"user{i:06d}", "admin": False, "cookie_id": secrets.token_hex(8), "spawn_failures": 0}
        for i in range(n)
    ]
    async with hub.db() as s:
        for i in range(0, n, 5000):
            await s.execute(insert(User), rows[i : i + 5000])
        await s.commit()


async def spawn_burst(hub: Hub, servers: int) -> dict[str, float | int | bool]:
    names = [f"user{i:06d}" for i in range(servers)]
    t0 = time.perf_counter()
    ids = await asyncio.gather(*(hub.spawns.request_start(n) for n in names))
    t_req = time.perf_counter() - t0
    outcomes = await asyncio.gather(*(hub.spawns.wait(i, 600) for i in ids))
    t_all = time.perf_counter() - t0
    errors = sum(o != "ready" for o in outcomes)
    monotonic = True
    max_pos = 0
    for spawn_id in ids:
        pos = [
            ev.queue_position
            for _s, ev in await hub.spawns.progress.stored(spawn_id)
            if ev.phase is Phase.QUEUED
        ]
        max_pos = max([max_pos, *[p or 0 for p in pos]])
        if pos != sorted(pos, reverse=True) or len(set(pos)) != len(pos):
            monotonic = False
    return {
        "requests_accepted_s": t_req,
        "all_ready_s": t_all,
        "errors": errors,
        "positions_only_decrease": monotonic,
        "max_queue_position": max_pos,
        "max_starting_at_once": hub.spawns.queue.max_active_seen,
    }


async def lone_spawns(hub: Hub, first: int, count: int = 5) -> list[float]:
    """Seconds from request to ready for spawns made one at a time (nothing else starting)."""
    out = []
    for i in range(first, first + count):
        t0 = time.perf_counter()
        spawn_id = await hub.spawns.request_start(f"user{i:06d}")
        if await hub.spawns.wait(spawn_id, 60) != "ready":
            raise RuntimeError(f"lone spawn {i} did not become ready")
        out.append(time.perf_counter() - t0)
    return out


async def restart(settings, servers: int) -> dict[str, float | int]:
    t0 = time.perf_counter()
    hub = await Hub.create(settings, load_entry_points=False)
    await hub.start(background=False)
    t_started = time.perf_counter() - t0
    import uvicorn

    sock = listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hub), log_level="warning"))
    task = asyncio.create_task(serve_then_adopt(hub, server, [sock]))  # exactly what `hubkit` does
    url = f"http://127.0.0.1:{port}/hub/health"
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url, timeout=1)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.005)
    t_health = time.perf_counter() - t0
    adopting_when_answered = not hub.adoption.done.is_set()
    await hub.adoption.done.wait()
    t_adopted = time.perf_counter() - t0
    kept = len(hub.adoption.kept)
    server.should_exit = True
    await task
    await hub.stop()
    assert kept == servers, (kept, hub.adoption.errors)
    return {
        "hub_started_s": t_started,
        "health_answered_s": t_health,
        "adoption_done_s": t_adopted,
        "still_adopting_when_health_answered": int(adopting_when_answered),
        "readopted": kept,
    }


async def run(users: int, servers: int, limit: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="hubkit-bench-") as tmp:
        settings = make_settings(
            Path(tmp),
            spawner={"concurrent_spawn_limit": limit, "poll_interval": 3600, "adopt_concurrency": 50},
            proxy={"check_interval": 3600},
        )
        hub = await Hub.create(settings, load_entry_points=False)
        await hub.start()
        await add_users(hub, users)
        load0 = os.getloadavg()[0]
        lone = await lone_spawns(hub, servers)
        burst = await spawn_burst(hub, servers)
        burst["loadavg_start"] = load0
        burst["lone_spawn_s"] = lone
        for i in range(servers, servers + len(lone)):  # the lone ones are not part of the restart
            await hub.spawns.stop(f"user{i:06d}")
        await hub.stop()
        restart_load = os.getloadavg()[0]
        again = await restart(settings, servers)
        again["restart_loadavg"] = restart_load
        hub.spawner.close_all()  # the first hub object's in-process servers
        return {"users": users, "servers": servers, "limit": limit, **burst, **again}


def installed_plugins() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="hubkit"))


def cli_start(runs: int = 3, *, every_plugin: bool = False) -> list[tuple[float, float]]:
    """The real ``hubkit`` process: (wall seconds, CPU seconds) from exec until /hub/health answers; with core
    plugins only, or (``every_plugin``) with every plugin installed in this environment loaded, as a hub does
    by default."""

    out = []
    with tempfile.TemporaryDirectory(prefix="hubkit-bench-cli-") as tmp:
        cfg = Path(tmp) / "hubkit.toml"
        cfg.write_text(f'[hub]\nport = 0\ndata_dir = "{tmp}"\n')
        env = {k: v for k, v in os.environ.items() if k != "HUBKIT_PLUGINS"}
        if not every_plugin:
            env["HUBKIT_PLUGINS"] = ""
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "hubkit.cli", "-f", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            port = wait_bound_ports(Path(tmp), proc, proxy=False)["port"]
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/hub/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.01)
            wall = time.perf_counter() - t0
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            proc.terminate()
            proc.wait(30)
            out.append((wall, cpu))
    return out


def report(data: dict[str, object]) -> str:
    results: list[dict[str, object]] = data["results"]  # type: ignore[assignment]
    cli: list[list[float]] = data["cli"]  # type: ignore[assignment]
    lines = [
        "# hubkit-core benchmarks",
        "",
        f"Written by `benchmarks/core/core_bench.py` from run `{data['stamp']}` (commit `{data['commit']}`; raw "
        f"results in `benchmarks/results/core/{data['stamp']}.json`): {data['machine']}, Python "
        f"{data['python']}, SQLite (WAL), stand-in spawner (in-process servers), `none` proxy. The load average "
        "at the start of each part is given with it; the machine is shared with other work.",
        "",
        "## Restart with many users and running servers",
        "",
        "A new hub object on the same database, served by uvicorn in this process: time from `Hub.create` until "
        "`/hub/health` answers, and until every running server was polled and re-adopted (in the background).",
        "",
        "| users | running servers | hub started | /hub/health answers | all re-adopted | re-adopted | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['users']:,} | {r['servers']:,} | {r['hub_started_s']:.2f} s | {r['health_answered_s']:.2f} s "
            f"| {r['adoption_done_s']:.2f} s | {r['readopted']} | {r['restart_loadavg']:.1f} |"
        )
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        lines += [
            "",
            f"With {lo['users']:,} users `/hub/health` answered after {lo['health_answered_s']:.2f} s, with "
            f"{hi['users']:,} after {hi['health_answered_s']:.2f} s "
            f"({hi['health_answered_s'] / lo['health_answered_s']:.2f}x for {hi['users'] / lo['users']:.0f}x the users).",
        ]
    wall, cpu = spans(cli)
    lines += [
        "",
        "## The `hubkit` command from exec to answering, empty hub",
        "",
        f"An empty hub (no users, no servers), core plugins only, load average {data['cli_loadavg']:.1f} at the "
        f"start: {len(cli)} starts took {wall} s wall and {cpu} s "
        "of the process's CPU until `/hub/health` answered. This is not a restart with servers to re-adopt (that is "
        "the table above, in-process).",
        "",
        *_every_plugin_sentence(data),
        "## Concurrent spawns through the FIFO queue",
        "",
        "| users in DB | spawn requests | concurrent-spawn limit | all ready | errors | max starting at once "
        "| max queue position | positions only decrease | one spawn alone (median of 5) | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lone = statistics.median(r["lone_spawn_s"]) * 1000  # type: ignore[arg-type]
        lines.append(
            f"| {r['users']:,} | {r['servers']:,} | {r['limit']} | {r['all_ready_s']:.2f} s | {r['errors']} "
            f"| {r['max_starting_at_once']} | {r['max_queue_position']} "
            f"| {'yes' if r['positions_only_decrease'] else 'NO'} | {lone:.0f} ms | {r['loadavg_start']:.1f} |"
        )
    lines.append("")
    for r in results:
        within = r["max_starting_at_once"] <= r["limit"]  # type: ignore[operator]
        lines.append(
            f"* {r['users']:,} users: {r['servers'] - r['errors']} of {r['servers']} spawns became ready "  # type: ignore[operator]
            f"({r['errors']} errors) in {r['all_ready_s']:.2f} s; at most {r['max_starting_at_once']} were starting at "
            f"once against a limit of {r['limit']} ({'within' if within else 'OVER'} the limit); queue positions "
            f"{'only went down for every waiting request' if r['positions_only_decrease'] else 'went UP for some request'}."
        )
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- core:begin -->", "<!-- core:end -->"


def summary(data: dict[str, object]) -> str:
    """The core section of docs/benchmarks.md, from the same results."""
    results: list[dict[str, object]] = data["results"]  # type: ignore[assignment]
    cli: list[list[float]] = data["cli"]  # type: ignore[assignment]
    lines = [
        BEGIN,
        "## Core: restart, the `hubkit` command, spawn bursts (issue 2)",
        "",
        f"Run `{data['stamp']}`, commit `{data['commit']}`, `benchmarks/core/core_bench.py` (this section is written by "
        "it); details in [benchmarks/core.md](benchmarks/core.md).",
        "",
        "| measured | result | load avg |",
        "| --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| new hub object on a database with {r['users']:,} users and {r['servers']:,} running servers: "
            f"`/hub/health` answering | {r['health_answered_s']:.2f} s (all re-adopted after {r['adoption_done_s']:.2f} s) "
            f"| {r['restart_loadavg']:.1f} |"
        )
    for r in results:
        lines.append(
            f"| {r['servers']:,} spawns requested at once, limit {r['limit']}, {r['users']:,} users, stand-in servers "
            f"| all ready in {r['all_ready_s']:.2f} s, {r['errors']} errors, at most {r['max_starting_at_once']} starting, "
            f"positions {'only decreased' if r['positions_only_decrease'] else 'went UP'} | {r['loadavg_start']:.1f} |"
        )
    wall, cpu = spans(cli)
    lines.append(
        f"| the `hubkit` command from exec to `/hub/health`, **empty hub** | {wall} s wall, {cpu} s CPU "
        f"| {data['cli_loadavg']:.1f} |"
    )
    every: list[list[float]] | None = data.get("cli_every_plugin")  # type: ignore[assignment]
    if every:
        names: list[str] = data["plugins"]  # type: ignore[assignment]
        wall, cpu = spans(every)
        lines.append(
            f"| the same with every installed plugin loaded ({len(names)}: {', '.join(names)}) | {wall} s wall, "
            f"{cpu} s CPU | {data['cli_every_plugin_loadavg']:.1f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def spans(runs: list[list[float]] | list[tuple[float, float]]) -> tuple[str, str]:
    """``min-max`` of the wall and of the CPU seconds of ``hubkit`` command starts."""
    walls = [w for w, _c in runs]
    cpus = [c for _w, c in runs]
    return f"{min(walls):.2f}-{max(walls):.2f}", f"{min(cpus):.2f}-{max(cpus):.2f}"


def _every_plugin_sentence(data: dict[str, object]) -> list[str]:
    """Runs kept before this figure existed have no such part."""
    every: list[list[float]] | None = data.get("cli_every_plugin")  # type: ignore[assignment]
    if not every:
        return []
    wall, cpu = spans(every)
    names: list[str] = data["plugins"]  # type: ignore[assignment]
    return [
        f"The same with every plugin installed in the benchmark's environment loaded, as a hub loads them by "
        f"default ({len(names)}: {', '.join(names)}), load average {data['cli_every_plugin_loadavg']:.1f} at the "
        f"start: {len(every)} starts took {wall} s wall and {cpu} s of CPU.",
        "",
    ]


def write_docs(data: dict[str, object]) -> None:
    (REPO / "docs" / "benchmarks" / "core.md").write_text(report(data))
    index = REPO / "docs" / "benchmarks.md"
    text = index.read_text()
    block = summary(data)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    index.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--docs-from", metavar="STAMP", help="only write the report from kept results")
    args = ap.parse_args()
    if args.docs_from:
        write_docs(json.loads((RESULTS / f"{args.docs_from}.json").read_text()))
        return 0
    try:  # import the web app up front: the figures are about the hub's work, not first-time imports
        import hubkit.runtime.app  # noqa: F401
    except ImportError:
        pass
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = []
    for n in args.users:
        r = asyncio.run(run(n, args.servers, args.limit))
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        results.append(r)
    cli_load = os.getloadavg()[0]
    cli = cli_start()
    print("hubkit CLI to /hub/health (wall s, CPU s):", [(round(w, 2), round(c, 2)) for w, c in cli])
    every_load = os.getloadavg()[0]
    every = cli_start(every_plugin=True)
    print("... with every installed plugin:", [(round(w, 2), round(c, 2)) for w, c in every])
    data = {
        "stamp": stamp,
        "commit": commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "results": results,
        "cli": cli,
        "cli_loadavg": cli_load,
        "cli_every_plugin": every,
        "cli_every_plugin_loadavg": every_load,
        "plugins": installed_plugins(),
    }
    text = report(data)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{stamp}.json").write_text(json.dumps(data, indent=2))
        write_docs(data)
        print(f"wrote docs/benchmarks/core.md, the core section of docs/benchmarks.md and {RESULTS / f'{stamp}.json'}")
    return 0 if all(r["errors"] == 0 and r["positions_only_decrease"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
