#!/usr/bin/env python3
"""Hub replicas (issue 15 item 8): ``hubkit --workers N`` for N = 1, 2, 4 on PostgreSQL against one JupyterHub 6.1.1
on the same PostgreSQL cluster, in the same run.

    .venv-test/bin/python benchmarks/replicas/run.py [--workers 1 2 4] [--rounds 5] [--duration 5] [--spawns 100]
        [--no-docs]
    .venv-test/bin/python benchmarks/replicas/run.py --docs-from benchmarks/results/replicas/<file>.json

Each hub runs as users run it (``hubkit -f hubkit.toml --workers N``: a supervisor whose N worker processes accept
on the hub's one port; ``jupyterhub -f config.py``; see ``benchmarks/hubside.py``), each on its own database of
one throwaway PostgreSQL cluster, with an admin token it generated itself, no proxy, and the no-op spawners of
``benchmarks/api/run.py`` (hubkit's ``stand-in`` in-process servers; an in-hub listener spawner for JupyterHub).
All hubs are up together, idle but for the one measured. Measured, in ``--rounds`` rounds whose order of hubs
rotates by one each round (the machine is shared: its load changes during the run):

* ``GET /hub/api/users/{name}``, ``wrk`` with 50 clients for ``--duration`` s after a 1 s warm-up: req/s, and hub
  CPU per request = user + system CPU time (from /proc) of every process of the hub (supervisor and workers
  summed) over the measured window, divided by the requests answered;
* a wave of ``--spawns`` servers started at once through the REST API until ``GET /hub/api/users?state=ready``
  counts them all (polled every 0.2 s): wall time to all ready and hub CPU per server; then all stopped at once.

Raw results (commit, load averages at every measurement, each round) go to
``benchmarks/results/replicas/<UTC time>-<commit>.json``; the replicas section of ``docs/benchmarks.md`` is written
from them, every sentence computed from that run's numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import hubload  # noqa: E402
import record  # noqa: E402
from hubside import Database, HubkitWorkers, HubProcess, JupyterHub, loadavg, stop_all, versions  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = record.RESULTS / "replicas"
BEGIN, END = "<!-- replicas:begin -->", "<!-- replicas:end -->"
JH = "jupyterhub"
CLIENTS = 50
WARMUP_S = 1.0
IDLE_S = 5.0


def key(workers: int) -> str:
    return f"hubkit-w{workers}"


def label(k: str) -> str:
    return "JupyterHub 6.1.1" if k == JH else f"`hubkit --workers {k.rsplit('w', 1)[1]}`"


def idle_cpu(hubs: dict[str, HubProcess]) -> dict[str, float]:
    """Each hub's CPU while nobody calls it (its own timers and leases), ms per second, all measured at once."""
    before = {k: h.cpu() for k, h in hubs.items()}
    time.sleep(IDLE_S)
    return {k: 1000 * (h.cpu() - before[k]) / IDLE_S for k, h in hubs.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hubkit-replicas-bench-"))
    db = Database.start("postgres")
    hubs: dict[str, HubProcess] = {}
    out: dict[str, Any] = {"rounds": [], "setup": {}}
    try:
        for n in args.workers:
            hubs[key(n)] = HubkitWorkers(tmp / key(n), db, workers=n, spawn_limit=args.spawns)
        hubs[JH] = JupyterHub(tmp / JH, db, spawn_limit=args.spawns)
        names = [f"user{i:04d}" for i in range(max(args.spawns, 1) + 1)]
        for k, hub in hubs.items():
            t0 = time.monotonic()
            hub.prepare()
            hub.start()
            hub.add_users(names)
            out["setup"][k] = {
                "start_and_users_s": time.monotonic() - t0,
                "processes": len(hub.processes()),
                "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(hub.command())),
            }
            print(f"{label(k)}: up, {len(hub.processes())} processes, {len(names)} users", flush=True)
        out["idle_cpu_ms_per_s"] = idle_cpu(hubs)
        print(f"idle CPU (ms/s): {out['idle_cpu_ms_per_s']}", flush=True)
        target = f"/hub/api/users/{names[-1]}"
        wave = names[: args.spawns]
        order = list(hubs)
        for rnd in range(args.rounds):
            rotated = order[rnd % len(order) :] + order[: rnd % len(order)]
            got: dict[str, Any] = {"order": rotated, "loadavg_start": list(os.getloadavg()), "get_user@50": {}}
            for k in rotated:
                r = hubload.requests(hubs[k], target, conns=CLIENTS, duration=args.duration, warmup=WARMUP_S)
                got["get_user@50"][k] = r
                print(
                    f"[round {rnd + 1}] {label(k):24s} GET user @{CLIENTS}: {r['rps']:7.0f} req/s  hub CPU "
                    f"{r['cpu_ms_per_request']:.3f} ms/request over {r['hub_processes']} processes  errors "
                    f"{r['errors'] + r['socket_errors']:.0f}  load {r['loadavg_start']:.1f}",
                    flush=True,
                )
            got["spawn"], got["stop"] = {}, {}
            for k in rotated:
                s = hubload.spawn_wave(hubs[k], wave, timeout=args.wave_timeout)
                t = hubload.stop_wave(hubs[k], wave, timeout=args.wave_timeout)
                got["spawn"][k], got["stop"][k] = s, t
                print(
                    f"[round {rnd + 1}] {label(k):24s} wave of {len(wave)}: all ready {s['done']} after "
                    f"{s['wall_s']:.2f} s, hub CPU {s['cpu_ms_per_server']:.1f} ms/server; stopped {t['done']} after "
                    f"{t['wall_s']:.2f} s  load {s['loadavg_start']:.1f}",
                    flush=True,
                )
            got["loadavg_end"] = list(os.getloadavg())
            out["rounds"].append(got)
    finally:
        stop_all(list(hubs.values()), db, tmp)
    return out


# ---- report: every sentence from the run's numbers --------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def per_round(res: dict[str, Any], what: str, k: str, field: str) -> list[float]:
    return [float(r[what][k][field]) for r in res["rounds"] if k in r[what]]


def rng(xs: list[float], fmt: str) -> str:
    return f"{format(min(xs), fmt)}-{format(max(xs), fmt)}" if xs else "-"


def compare(res: dict[str, Any], a: str, b: str, what: str, field: str) -> tuple[float, list[float]]:
    """Median of ``a``'s figure over ``b``'s, and the same ratio in each round (both measured back to back)."""
    ra, rb = per_round(res, what, a, field), per_round(res, what, b, field)
    ratios = [x / y for x, y in zip(ra, rb, strict=True) if y]
    return (med(ra) / med(rb) if med(rb) else float("nan")), ratios


def rounds_where(ratios: list[float], above: bool) -> str:
    n = sum(1 for r in ratios if (r > 1) == above)
    return "every round" if n == len(ratios) else "no round" if n == 0 else f"{n} of {len(ratios)} rounds"


def section(res: dict[str, Any], rel_path: str) -> str:
    meta = res["meta"]
    cpus = int(meta["machine"]["cpus"])
    workers = [int(w) for w in meta["settings"]["workers"]]
    ks = [key(n) for n in workers] + [JH]
    nr = len(res["rounds"])
    loads = [r["loadavg_start"][0] for r in res["rounds"]] + [r["loadavg_end"][0] for r in res["rounds"]]
    spawns = int(meta["settings"]["spawns"])
    lines = [
        BEGIN,
        "## Hub replicas: `hubkit --workers N` on PostgreSQL vs one JupyterHub 6.1.1 (issue 15 item 8)",
        "",
        f"Run of {meta['stamp']}, commit `{meta['commit']['sha'][:10]}`{' (with uncommitted changes)' if meta['commit']['dirty'] else ''}, "
        f"`benchmarks/replicas/run.py` (this section is written by it); raw JSON: `{rel_path}`. "
        f"Machine: **{cpus} CPUs** ({meta['machine']['platform']}), shared by `wrk`, every hub process, PostgreSQL and "
        f"other work: the 1-minute load average was {rng(loads, '.1f')} during the run "
        f"({meta['machine']['loadavg'][0]:.1f} / {meta['machine']['loadavg'][1]:.1f} / "
        f"{meta['machine']['loadavg'][2]:.1f} at its start). All hubs on one PostgreSQL cluster (a database each), up "
        f"together, no proxy, an admin token each generated itself; {nr} rounds, the order of the hubs rotated by one "
        "each round; each figure is the median of the rounds, with the rounds' range.",
        "",
        f"| hub (command) | processes | `GET /hub/api/users/{{name}}`, {CLIENTS} clients, {meta['settings']['duration_s']:g} s: "
        "req/s | hub CPU / request (all processes) | errors | "
        f"{spawns} no-op spawns at once: s to all ready | hub CPU / server | stop wave: s | idle hub CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in ks:
        rps = per_round(res, "get_user@50", k, "rps")
        cpu = per_round(res, "get_user@50", k, "cpu_ms_per_request")
        errs = sum(
            int(r["get_user@50"][k]["errors"] + r["get_user@50"][k]["socket_errors"]) for r in res["rounds"]
        )
        wall = per_round(res, "spawn", k, "wall_s")
        spcpu = per_round(res, "spawn", k, "cpu_ms_per_server")
        stop = per_round(res, "stop", k, "wall_s")
        done = sum(1 for r in res["rounds"] if r["spawn"][k]["done"])
        lines.append(
            f"| {label(k)} | {res['setup'][k]['processes']} | {med(rps):.0f} ({rng(rps, '.0f')}) "
            f"| {med(cpu):.3f} ms ({rng(cpu, '.3f')}) | {errs} "
            f"| {med(wall):.2f} ({rng(wall, '.2f')}){'' if done == nr else f', all ready in {done} of {nr} rounds'} "
            f"| {med(spcpu):.1f} ms ({rng(spcpu, '.1f')}) | {med(stop):.2f} | {res['idle_cpu_ms_per_s'][k]:.1f} ms/s |"
        )
    lines += ["", *[f"* {s}" for s in sentences(res, workers, cpus)], "", *history(), END]
    return "\n".join(lines)


def sentences(res: dict[str, Any], workers: list[int], cpus: int) -> list[str]:
    said: list[str] = []
    nr = len(res["rounds"])
    rps = {k: med(per_round(res, "get_user@50", k, "rps")) for k in [*map(key, workers), JH]}
    cpu = {k: med(per_round(res, "get_user@50", k, "cpu_ms_per_request")) for k in rps}
    wall = {k: med(per_round(res, "spawn", k, "wall_s")) for k in rps}
    for lo, hi in itertools.pairwise(workers):
        ratio, ratios = compare(res, key(hi), key(lo), "get_user@50", "rps")
        cratio, _ = compare(res, key(hi), key(lo), "get_user@50", "cpu_ms_per_request")
        more = rounds_where(ratios, above=True)
        s = (
            f"{hi} workers answered {ratio:.2f}x the req/s of {lo} ({rps[key(hi)]:.0f} vs {rps[key(lo)]:.0f}; more in "
            f"{more}, per-round ratios {rng(ratios, '.2f')}) at {cratio:.2f}x the hub CPU per request"
        )
        if hi > cpus and lo >= cpus:
            s += (
                f". Both counts are at least the machine's {cpus} CPUs, so the extra workers bring no CPU of their own; "
                + (
                    f"{hi} workers answered more than {lo} in {more} only, so this run shows no scaling beyond {lo}"
                    if more != "every round"
                    else f"{hi} workers answered more than {lo} in every round, which on a machine shared with other "
                    "work is a larger share of its CPUs taken by more processes, not throughput that more workers "
                    f"would add on a dedicated {cpus}-CPU machine"
                )
            )
        elif hi <= cpus:
            loads = [r["loadavg_start"][0] for r in res["rounds"]]
            s += (
                f"; the gain held in every round ({hi} workers on {cpus} CPUs)"
                if more == "every round"
                else f"; the gain was not consistent (1-minute load average {rng(loads, '.1f')} at the rounds' "
                f"start, on {cpus} CPUs), so this run shows no clear gain from {hi} workers over {lo}"
            )
        elif hi > cpus:
            s += (
                f". {hi} workers exceed the machine's {cpus} CPUs (shared with `wrk` at {CLIENTS} clients): "
                + (
                    f"the gain over {lo} held in every round"
                    if more == "every round"
                    else f"{hi} workers were not faster than {lo} in {rounds_where(ratios, above=False)}"
                )
            )
        said.append(s + ".")
    best = max((key(n) for n in workers), key=lambda k: rps[k])
    said.append(
        f"The fastest hubkit configuration in this run, {label(best)}, answered {rps[best] / rps[JH]:.1f}x the req/s of "
        f"JupyterHub 6.1.1 ({rps[best]:.0f} vs {rps[JH]:.0f}) at {cpu[best] / cpu[JH]:.2f}x its hub CPU per request; "
        + ", ".join(f"{label(key(n))} {rps[key(n)] / rps[JH]:.1f}x" for n in workers)
        + f" (medians of {nr} rounds)."
    )
    waves = ", ".join(f"{label(key(n))} {wall[key(n)]:.2f} s" for n in workers)
    fastest = min((key(n) for n in workers), key=lambda k: wall[k])
    slowest = max((key(n) for n in workers), key=lambda k: wall[k])
    said.append(
        f"A wave of {res['meta']['settings']['spawns']} no-op spawns was all ready after {waves}; JupyterHub "
        f"{wall[JH]:.2f} s (medians). Between hubkit's worker counts the medians differ by "
        f"{wall[slowest] - wall[fastest]:.2f} s ({label(fastest)} fastest, {label(slowest)} slowest); JupyterHub's "
        f"wave took {min(wall[JH] / wall[key(n)] for n in workers):.1f}x-{max(wall[JH] / wall[key(n)] for n in workers):.1f}x "
        "as long as hubkit's."
    )
    if slowest != fastest:
        _, ratios = compare(res, slowest, fastest, "spawn", "wall_s")
        said[-1] += (
            f" {label(slowest)}'s wave was slower than {label(fastest)}'s in {rounds_where(ratios, above=True)} "
            f"(per-round ratios {rng(ratios, '.2f')})."
        )
    spcpu = {k: med(per_round(res, "spawn", k, "cpu_ms_per_server")) for k in rps}
    said.append(
        "Hub CPU per server of the wave (all processes): "
        + ", ".join(f"{label(key(n))} {spcpu[key(n)]:.1f} ms" for n in workers)
        + f", JupyterHub {spcpu[JH]:.1f} ms (medians)."
    )
    changed = [
        (i + 1, k, what)
        for i, r in enumerate(res["rounds"])
        for what in ("get_user@50", "spawn", "stop")
        for k, m in r[what].items()
        if m.get("hub_processes_changed")
    ]
    if changed:
        said.append(
            "A hub's set of processes changed during "
            + ", ".join(f"round {i} {what} of {label(k)}" for i, k, what in changed)
            + " (a worker restarted): those CPU figures miss the exited process's time."
        )
    not_done = [(i + 1, k) for i, r in enumerate(res["rounds"]) for k, m in r["spawn"].items() if not m["done"]]
    if not_done:
        said.append(
            "Not all servers became ready in " + ", ".join(f"round {i} of {label(k)}" for i, k in not_done) + "."
        )
    return said


def history() -> list[str]:
    """Every kept run of this script: the medians that the comparisons above rest on, with the load."""
    lines = [
        "Every kept run (`benchmarks/results/replicas/`), medians of its rounds:",
        "",
        "| run | commit | CPUs | load avg (rounds) | req/s: " + " / ".join(f"{n} w" for n in (1, 2, 4)) + " / JupyterHub "
        "| spawn wave, s: " + " / ".join(f"{n} w" for n in (1, 2, 4)) + " / JupyterHub |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        run = json.loads(path.read_text())
        ks = [key(n) for n in (1, 2, 4)] + [JH]
        loads = [r["loadavg_start"][0] for r in run["rounds"]]

        def fig(what: str, field: str, fmt: str, run: dict[str, Any] = run, ks: list[str] = ks) -> str:
            return " / ".join(
                format(med(per_round(run, what, k, field)), fmt) if per_round(run, what, k, field) else "-" for k in ks
            )

        lines.append(
            f"| `{path.name}` | `{run['meta']['commit']['sha'][:10]}` | {run['meta']['machine']['cpus']} "
            f"| {rng(loads, '.1f')} | {fig('get_user@50', 'rps', '.0f')} | {fig('spawn', 'wall_s', '.2f')} |"
        )
    return lines


def write_docs(res: dict[str, Any], path: Path) -> None:
    rel = str(path.resolve().relative_to(ROOT))
    record.write_section(DOC, BEGIN, END, section(res, rel))
    print(f"wrote the replicas section of {DOC}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per measurement (after 1 s warm-up)")
    ap.add_argument("--spawns", type=int, default=100)
    ap.add_argument("--wave-timeout", type=float, default=120.0)
    ap.add_argument("--no-docs", action="store_true", help="keep the results, leave the docs alone")
    ap.add_argument("--docs-from", type=Path, metavar="JSON", help="only write the docs from a kept result")
    args = ap.parse_args()
    if args.docs_from:
        write_docs(json.loads(args.docs_from.read_text()), args.docs_from)
        return 0
    if not shutil.which("wrk"):
        print("wrk is required (apt-get install wrk)", file=sys.stderr)
        return 2
    meta = {
        "stamp": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": record.commit(),
        "machine": {**record.machine(), "arch": platform.machine()},
        "versions": versions(),
        "settings": {
            "workers": args.workers,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": WARMUP_S,
            "clients": CLIENTS,
            "spawns": args.spawns,
            "poll_every_s": hubload.POLL_EVERY,
            "database": "postgres",
        },
    }
    res = run(args)
    res["meta"] = {**meta, "loadavg_end": list(os.getloadavg()), "loadavg_end_1m": loadavg()}
    res["commit"] = meta["commit"]  # record.save names the file after it
    path = record.save("replicas", res)
    print(f"kept {path}", flush=True)
    print(section(res, str(path.relative_to(ROOT))))
    if not args.no_docs:
        write_docs(res, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
