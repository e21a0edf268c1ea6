#!/usr/bin/env python3
"""Regression guard: the hub's CPU per request and per spawn must not grow more than 30% over the committed
baseline (``benchmarks/hub_baseline.json``). Bounded: about a minute and a half on two shared CPUs.

    .venv-test/bin/python benchmarks/hub_guard.py              # measure, compare, exit 1 on a regression
    .venv-test/bin/python benchmarks/hub_guard.py --update     # measure and write the baseline (commit it)

What it measures, on one ``hubkit`` process (the shipped command; SQLite; the core's plugins only; 500 users;
an admin token from ``hubkit token``), each as the hub process's own CPU time (user + system, from /proc):

* ``get_user``: ``GET /hub/api/users/{name}``, 10 clients, 4 s of ``wrk``: CPU per request;
* ``list_users``: ``GET /hub/api/users?limit=100`` (paginated), 10 clients, 4 s: CPU per request;
* ``spawn`` / ``stop``: 50 no-op servers started (stopped) at once through the REST API: CPU per server.

Each is taken five times and the smallest kept: foreign load on a shared machine only ever adds CPU time
(cache misses, contention), so the minimum is the most repeatable figure. CPU time still depends on how fast
the machine is, so every figure is divided by a calibration (the CPU time of a fixed pure-Python workload,
also the minimum of several) before it is compared: a machine twice as slow has both twice as large.

The baseline is per machine class: after moving CI to other hardware, run ``--update`` there once and commit
the result. Results of every run are kept under ``benchmarks/results/hub_guard/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import hubload  # noqa: E402
from hubside import PAGED, Database, Hubkit, commit, loadavg, versions  # noqa: E402

BASELINE = HERE / "hub_baseline.json"
RESULTS = HERE / "results" / "hub_guard"
TOLERANCE = 1.30  # fail above baseline x this
REPEATS = 5
USERS = 500
SPAWNS = 50


def calibrate(rounds: int = 5) -> float:
    """CPU seconds of a fixed pure-Python workload (dicts, strings, JSON: what a hub request does), the minimum
    of ``rounds`` runs."""
    best = float("inf")
    doc = {"name": "user00042", "admin": False, "groups": ["a", "b"], "servers": {"": {"ready": True, "url": "/u/"}}}
    for _ in range(rounds):
        t0 = time.process_time()
        total = 0
        for i in range(20_000):
            d = dict(doc, id=i, last_activity=f"2026-01-01T00:00:{i % 60:02d}Z")
            s = json.dumps(d)
            total += len(json.loads(s)["name"]) + len(s.split(":"))
        best = min(best, time.process_time() - t0)
    return best


def measure() -> dict[str, Any]:
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
            r = hubload.requests(hub, "/hub/api/users?limit=100", conns=10, duration=4, warmup=1, headers=PAGED)
            figures["list_users"].append(r["cpu_ms_per_request"])
            s = hubload.spawn_wave(hub, wave, timeout=60)
            t = hubload.stop_wave(hub, wave, timeout=60)
            if not (s["done"] and t["done"]):
                raise RuntimeError(f"the spawn wave did not complete: {s} {t}")
            figures["spawn"].append(s["cpu_ms_per_server"])
            figures["stop"].append(t["cpu_ms_per_server"])
            print(
                "  " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in figures.items()) + f" (load {loads[-1]:.1f})",
                flush=True,
            )
    finally:
        hub.stop()
        db.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"all_ms": figures, "ms": {k: min(v) for k, v in figures.items()}, "loadavg": loads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help="write the measured figures as the new baseline")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("guard: wrk is required (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    calib = calibrate()
    print(f"guard: calibration {calib * 1000:.1f} ms of CPU; measuring hub CPU ({REPEATS} rounds) ...", flush=True)
    got = measure()
    got["calibration_s"] = min(calib, calibrate())  # before and after: the quieter one
    run = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "versions": versions(),
        "seconds": round(time.monotonic() - started, 1),
        **got,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json").write_text(json.dumps(run, indent=2))
    if args.update:
        BASELINE.write_text(json.dumps({"hub": run}, indent=2) + "\n")
        print(f"guard: baseline written to {BASELINE} ({run['seconds']} s)")
        return 0
    base = json.loads(BASELINE.read_text())["hub"]
    scale = got["calibration_s"] / base["calibration_s"]
    print(
        f"guard: this machine's calibration is {scale:.2f}x the baseline's; load average {max(got['loadavg']):.1f} "
        f"(baseline {max(base['loadavg']):.1f}); {run['seconds']} s"
    )
    failed = []
    for key, value in got["ms"].items():
        allowed = base["ms"][key] * scale * TOLERANCE
        ok = value <= allowed
        print(
            f"  {key:10s} {value:8.3f} ms of hub CPU (baseline {base['ms'][key]:.3f} ms, x{scale:.2f} for this "
            f"machine = {base['ms'][key] * scale:.3f}; limit {allowed:.3f}): {'ok' if ok else 'REGRESSION'}"
        )
        if not ok:
            failed.append(key)
    if failed:
        print(f"guard: hub CPU grew more than {TOLERANCE - 1:.0%} for {', '.join(failed)}", file=sys.stderr)
        return 1
    print("guard: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
