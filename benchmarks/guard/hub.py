"""Hub rows of the regression guard: the hub's CPU per request and per spawn, on one ``hubkit`` process (the
shipped command; SQLite; the core's plugins only; 500 users; an admin token from ``hubkit token``), each as the
hub process's own CPU time (user + system, from /proc):

* ``hub.get_user_cpu_ms``: ``GET /hub/api/users/{name}``, 10 clients, 4 s of ``wrk``: CPU per request;
* ``hub.list_users_cpu_ms``: ``GET /hub/api/users?limit=100`` (paginated), 10 clients, 4 s: CPU per request;
* ``hub.spawn_cpu_ms`` / ``hub.stop_cpu_ms``: 50 no-op servers started (stopped) at once through the REST API:
  CPU per server.

Each is taken five times and the smallest kept: foreign load on a shared machine only ever adds CPU time
(cache misses, contention), so the minimum is the most repeatable figure. CPU time still depends on how fast
the machine is, so every figure is scaled by a calibration (the CPU time of a fixed pure-Python workload, the
smaller of two measurements) to a reference machine on which that workload takes 100 ms: a machine twice as
slow has both twice as large. About a minute and a half on two shared CPUs.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hubload
from hubside import PAGED, Database, Hubkit, loadavg
from rows import Row

REFERENCE_CALIBRATION_S = 0.1
REPEATS = 5
USERS = 500
SPAWNS = 50
WHAT = {
    "get_user": "GET /hub/api/users/{name}, one hubkit process on SQLite, 500 users, wrk 10 clients x 4 s",
    "list_users": "GET /hub/api/users?limit=100, one hubkit process on SQLite, 500 users, wrk 10 clients x 4 s",
    "spawn": "50 no-op servers started at once through the REST API, one hubkit process on SQLite",
    "stop": "the same 50 servers stopped at once through the REST API",
}


def calibrate(rounds: int = 5) -> float:
    """CPU seconds of a fixed pure-Python workload (dicts, strings, JSON: what a hub request does), the minimum
    of ``rounds`` runs."""
    best = float("inf")
    doc = {
        "name": "user00042",
        "admin": False,
        "groups": ["a", "b"],
        "servers": {"": {"ready": True, "url": "/u/"}},
    }
    for _ in range(rounds):
        t0 = time.process_time()
        total = 0
        for i in range(20_000):
            d = dict(doc, id=i, last_activity=f"2026-01-01T00:00:{i % 60:02d}Z")
            s = json.dumps(d)
            total += len(json.loads(s)["name"]) + len(s.split(":"))
        best = min(best, time.process_time() - t0)
    return best


def hub_figures() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hubkit-guard-"))
    db = Database.start("sqlite")
    hub = Hubkit(tmp / "hubkit", db, spawn_limit=SPAWNS)
    figures: dict[str, list[float]] = {"get_user": [], "list_users": [], "spawn": [], "stop": []}
    loads: list[float] = []
    try:
        hub.prepare()
        hub.start()
        names = [f"user{i:05d}" for i in range(USERS)]
        hub.add_users(names[:50])
        hub.bulk_users(names[50:])
        target = f"/hub/api/users/user{USERS // 2:05d}"
        wave = names[:SPAWNS]
        for _ in range(REPEATS):
            loads.append(loadavg())
            r = hubload.requests(hub, target, conns=10, duration=4, warmup=1)
            figures["get_user"].append(r["cpu_ms_per_request"])
            r = hubload.requests(
                hub, "/hub/api/users?limit=100", conns=10, duration=4, warmup=1, headers=PAGED
            )
            figures["list_users"].append(r["cpu_ms_per_request"])
            s = hubload.spawn_wave(hub, wave, timeout=60)
            t = hubload.stop_wave(hub, wave, timeout=60)
            if not (s["done"] and t["done"]):
                raise RuntimeError(f"the spawn wave did not complete: {s} {t}")
            figures["spawn"].append(s["cpu_ms_per_server"])
            figures["stop"].append(t["cpu_ms_per_server"])
            print(
                "  "
                + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in figures.items())
                + f" (load {loads[-1]:.1f})",
                flush=True,
            )
    finally:
        hub.stop()
        db.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"all_ms": figures, "ms": {k: min(v) for k, v in figures.items()}, "loadavg": loads}


def measure() -> list[Row]:
    if not shutil.which("wrk"):
        raise SystemExit("guard: wrk is required (apt-get install wrk)")
    calib = calibrate()
    got = hub_figures()
    calib = min(calib, calibrate())  # before and after: the quieter one
    scale = REFERENCE_CALIBRATION_S / calib
    print(f"  hub: calibration {calib * 1000:.1f} ms of CPU, figures scaled by {scale:.2f}", flush=True)
    unit = "ms of hub CPU per {} on the reference machine (calibration 100 ms)"
    return [
        Row(
            f"hub.{key}_cpu_ms",
            got["ms"][key] * scale,
            unit.format("server" if key in ("spawn", "stop") else "request"),
            f"{WHAT[key]}; smallest of {REPEATS}, calibration {calib * 1000:.1f} ms",
            [v * scale for v in got["all_ms"][key]],
        )
        for key in WHAT
    ]
