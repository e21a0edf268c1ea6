"""What the hub-side benchmarks measure of a running hub (:mod:`hubside`): every figure is the hub process's
own CPU time (user + system, from ``/proc``) over a bounded piece of work, divided by the work done.

The hub's CPU is :meth:`HubProcess.cpu`: the hub process's, or for ``hubkit --workers N`` the supervisor's and
every worker's, summed; ``hub_processes`` says how many were summed.

* :func:`requests`: ``wrk`` against one URL for a fixed time; CPU per request = hub CPU / requests answered.
* :func:`spawn_wave` / :func:`stop_wave`: N servers started (stopped) at once through the REST API, then the
  hub's ``state`` filter polled every 0.2 s until all are ready (stopped); CPU per spawn = hub CPU from the first
  request to the poll that saw them all, divided by N. The polls are part of that CPU, and counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from typing import Any

import httpx
from hubside import PAGED, HubProcess, loadavg

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
POLL_EVERY = 0.2


def parse_wrk(out: str) -> dict[str, float]:
    res: dict[str, float] = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m:
            res[f"p{pct}_ms"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["errors"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = float(sum(int(x) for x in m.groups())) if m else 0.0
    return res


def wrk(
    url: str,
    conns: int,
    duration: float,
    headers: dict[str, str],
    script: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    cmd = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration:g}s", "--latency", "--timeout", "30s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True, timeout=600
    ).stdout
    return parse_wrk(out)


def requests(
    hub: HubProcess,
    path: str,
    *,
    conns: int,
    duration: float,
    headers: dict[str, str] | None = None,
    warmup: float = 2.0,
    script: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """``wrk`` for ``duration`` seconds (after a ``warmup``), with the hub's CPU over the measured part."""
    h = {"Authorization": f"token {hub.token}", **(headers or {})} if script is None else dict(headers or {})
    if warmup:
        wrk(hub.url + path, conns, warmup, h, script, env)
    pids = hub.processes()
    load0, cpu0 = loadavg(), hub.cpu()
    r = wrk(hub.url + path, conns, duration, h, script, env)
    cpu = hub.cpu() - cpu0
    r.update(
        hub_cpu_s=cpu,
        hub_processes=len(pids),
        hub_processes_changed=pids != hub.processes(),
        cpu_ms_per_request=1000 * cpu / r["requests"] if r["requests"] else float("nan"),
        loadavg_start=load0,
        loadavg_end=loadavg(),
        clients=conns,
        duration_s=duration,
    )
    return r


async def _wave(
    hub: HubProcess, names: list[str], method: str, state: str, want: int, timeout: float  # noqa: ASYNC109
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=len(names) + 2, max_keepalive_connections=len(names) + 2)
    headers = {"Authorization": f"token {hub.token}"}
    async with httpx.AsyncClient(base_url=f"{hub.url}/hub/api", headers=headers, limits=limits, timeout=timeout) as c:
        pids = hub.processes()
        load0, cpu0, t0 = loadavg(), hub.cpu(), time.monotonic()
        answers = await asyncio.gather(
            *(c.request(method, f"/users/{n}/server") for n in names), return_exceptions=True
        )
        refused = [
            (a.status_code if isinstance(a, httpx.Response) else repr(a))
            for a in answers
            if not (isinstance(a, httpx.Response) and a.status_code in (201, 202, 204))
        ]
        polls, seen, poll_errors = 0, -1, []
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            r = await c.get(f"/users?state={state}&limit=1", headers=PAGED)
            polls += 1
            if r.status_code == 200 and "_pagination" in r.json():
                seen = int(r.json()["_pagination"]["total"])
                if seen == want:
                    break
            else:
                poll_errors.append(f"{r.status_code} {r.text[:200]}")
            await asyncio.sleep(POLL_EVERY)
        wall = time.monotonic() - t0
        cpu = hub.cpu() - cpu0
        changed = pids != hub.processes()
    return {
        "servers": len(names),
        "wall_s": wall,
        "hub_cpu_s": cpu,
        "cpu_ms_per_server": 1000 * cpu / len(names),
        "hub_processes": len(pids),
        "hub_processes_changed": changed,
        "polls": polls,
        "done": seen == want,
        "refused": refused[:10],
        "refused_count": len(refused),
        "poll_errors": poll_errors[:5],
        "loadavg_start": load0,
        "loadavg_end": loadavg(),
    }


def spawn_wave(hub: HubProcess, names: list[str], timeout: float = 180) -> dict[str, Any]:
    """Start every server in ``names`` at once; done when the hub lists them all as ready."""
    return asyncio.run(_wave(hub, names, "POST", "ready", len(names), timeout))


def stop_wave(hub: HubProcess, names: list[str], timeout: float = 180) -> dict[str, Any]:
    """Stop them all at once; done when the hub lists no user with an active server."""
    return asyncio.run(_wave(hub, names, "DELETE", "active", 0, timeout))
