#!/usr/bin/env python3
"""`hubkit rehearse` used for real (issue 17, item 7), hubkit and JupyterHub 6.1.1 in the same run:

1. many users against each hub's control plane: hubkit's built-in ``test`` spawner (in-process servers) and,
   for JupyterHub, the STAND-IN in-hub spawner from packages/hubkit-rehearse/tests/jh_standin_spawner.py (its
   counterpart: JupyterHub ships no such spawner), both with the same pretend start-up time and the same
   concurrent_spawn_limit; every session logs in through the login form, presses Start, follows progress,
   reaches its server through the proxy (hubkit-proxy / configurable-http-proxy) and stops;
2. fewer users with real JupyterLab servers on each hub (hubkit: local spawner + hubkit-singleuser; JupyterHub:
   SimpleLocalProcessSpawner + jupyterhub-singleuser): JupyterLab through the OAuth redirects, a kernel, three
   cells, think time, stop.

The shipped command does the measuring (``python -m hubkit_rehearse``, the same code as ``hubkit rehearse``);
this script only starts the hubs, runs it, records the load average, the commit and each side's CPU seconds,
keeps every result under benchmarks/results/rehearse/<stamp>/, and writes docs/benchmarks/rehearse.md and the
rehearse section of docs/benchmarks.md from those results (every sentence computed from them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "packages" / "hubkit-rehearse" / "tests"))
from hubkit_rehearse.plots import timeline_png  # noqa: E402
from hubkit_rehearse.record import RunRecord  # noqa: E402
from hubkit_rehearse.report import compare_tables, run_tables, to_markdown  # noqa: E402
from hubkit_rehearse.stats import fmt_seconds, summarize  # noqa: E402
from rehearse_helpers import (  # noqa: E402
    HTTP_TIMEOUT,
    PASSWORD,
    START_TIMEOUT,
    HubkitHub,
    HubProcess,
    JupyterHub,
    chp_bin,
)

RESULTS = ROOT / "benchmarks" / "results" / "rehearse"
DOCS = ROOT / "docs"
BEGIN, END = "<!-- rehearse:begin -->", "<!-- rehearse:end -->"


def commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hub_pids(hub: HubProcess) -> list[int]:
    """The hub process and its proxy (hubkit-proxy or CHP), whose CPU is the hub side's cost."""
    pids = [hub.proc.pid] if hub.proc else []
    for name in ("hubkit-proxy.pid", "jupyterhub-proxy.pid"):
        f = hub.data / name
        if f.exists():
            try:
                pids.append(int(f.read_text().split()[0]))
            except ValueError:
                pass
    return pids


def rehearse(hub: HubProcess, label: str, args: list[str], out: Path, meta: dict[str, Any]) -> RunRecord:
    short = "hubkit" if isinstance(hub, HubkitHub) else "JupyterHub 6.1.1"
    env = {**os.environ, "HUBKIT_REHEARSE_ADMIN_TOKEN": hub.admin_token, "HUBKIT_REHEARSE_PASSWORD": PASSWORD}
    pids = hub_pids(hub)
    hub_cpu0 = sum(cpu_seconds(p) for p in pids)
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [
        sys.executable,
        "-m",
        "hubkit_rehearse",
        hub.url,
        *args,
        "--yes",
        "--out",
        str(out),
        "--live",
        "plain",
        "--progress-every",
        "10",
        "--tag",
        f"label={label}",
        "--tag",
        f"hub={short}",
        "--tag",
        f"commit={meta['commit']}",
    ]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    code = subprocess.run(cmd, env=env).returncode
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = RunRecord.load(out / "result.json")
    meta["runs"][label] = {
        "exit_code": code,
        "dir": out.name,
        "wall_seconds": time.monotonic() - t0,
        "hub_side_cpu_seconds": sum(cpu_seconds(p) for p in pids) - hub_cpu0,
        "hub_side_processes": len(pids),
        "rehearse_cpu_seconds": (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime),
        "loadavg_start": run.machine.get("loadavg_start"),
        "loadavg_end": run.machine.get("loadavg_end"),
    }
    (out / "report.html").unlink(missing_ok=True)  # regenerate with --from-json; the PNG is kept beside
    return run


def many_users(
    work: Path, out: Path, args: argparse.Namespace, meta: dict[str, Any]
) -> tuple[RunRecord, RunRecord]:
    # --concurrency as large as the class: the tool must never hold an arriving user back
    common = [
        "--concurrency",
        str(args.users),
        "--users",
        str(args.users),
        "--ramp",
        str(args.ramp),
        "--ramp-shape",
        args.shape,
        "--open",
        "api",
        "--think",
        args.think,
    ]
    hk = HubkitHub(
        work / "hubkit-test", spawner="test", spawner_cfg={"start_delay": args.start_delay}, limit=args.limit
    )
    jh = JupyterHub(work / "jupyterhub-standin", spawner="standin", limit=args.limit, delay=args.start_delay)
    try:
        hk.start()
        jh.start()
        a = rehearse(hk, f"hubkit, {args.users} users", common, out / f"hubkit-{args.users}", meta)
        b = rehearse(
            jh, f"JupyterHub 6.1.1, {args.users} users", common, out / f"jupyterhub-{args.users}", meta
        )
    finally:
        hk.stop()
        jh.stop()
    return a, b


def lab_users(
    work: Path, out: Path, args: argparse.Namespace, meta: dict[str, Any]
) -> tuple[RunRecord, RunRecord]:
    common = [
        "--concurrency",
        str(args.lab_users),
        "--users",
        str(args.lab_users),
        "--ramp",
        str(args.lab_ramp),
        "--think",
        args.lab_think,
        "--user-pattern",
        "lab-{i}",
    ]
    runs = []
    for hub, label, name in (
        (
            HubkitHub(work / "hubkit-lab", spawner="local"),
            f"hubkit, {args.lab_users} JupyterLab users",
            "hubkit-lab",
        ),
        (
            JupyterHub(work / "jupyterhub-lab", spawner="local"),
            f"JupyterHub 6.1.1, {args.lab_users} JupyterLab users",
            "jupyterhub-lab",
        ),
    ):
        try:
            hub.start()
            runs.append(rehearse(hub, label, common, out / f"{name}{args.lab_users}", meta))
        finally:
            hub.stop()
    return runs[0], runs[1]


# -- docs, every sentence from the results ---------------------------------------------------------------------


def _ok(run: RunRecord) -> str:
    s = summarize(run)
    return f"{s['outcomes'].get('ok', 0)} of {s['users']}"


def _p(run: RunRecord, phase: str, p: int) -> float | None:
    row = summarize(run)["phases"].get(phase)
    return None if row is None else row[f"p{p}"]


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or b is None else f"{b / a:.2f}x"


def findings(a: RunRecord, b: RunRecord, meta: dict[str, Any]) -> list[str]:
    la, lb = a.tags["label"], b.tags["label"]
    ha, hb = a.tags["hub"], b.tags["hub"]
    sa, sb = summarize(a), summarize(b)
    out = [f"Sessions completed: {_ok(a)} on {ha}; {_ok(b)} on {hb}."]
    for phase, what in (
        ("spawn", "Start to ready"),
        ("login", "Login"),
        ("open", "Opening the server through the proxy"),
        ("stop", "Stop"),
    ):
        a50, b50, a95, b95 = _p(a, phase, 50), _p(b, phase, 50), _p(a, phase, 95), _p(b, phase, 95)
        if a50 is None and b50 is None:
            continue
        out.append(
            f"{what}: median {fmt_seconds(a50)} on {ha} vs {fmt_seconds(b50)} on {hb} ({hb}/{ha}: {_ratio(a50, b50)}), "
            f"p95 {fmt_seconds(a95)} vs {fmt_seconds(b95)} ({_ratio(a95, b95)})."
        )
    for run, s in ((a, sa), (b, sb)):
        q = s["queue"]
        label = run.tags["hub"]
        if q["users_queued"]:
            out.append(
                f"{label} showed a queue position to {q['users_queued']} users (highest {q['max_position']})."
            )
        if q["users_429"]:
            out.append(
                f"{label} answered 429 to {q['users_429']} users ({q['retries_429']} answers); they waited "
                f"{q['seconds_waited_429']:.0f} s in total as Retry-After asked before trying again."
            )
        if not q["users_queued"] and not q["users_429"]:
            out.append(f"{label} neither queued nor refused a start.")
        if q.get("reconnects"):
            out.append(
                f"{label}: {q['reconnects']} requests were sent again because the hub or proxy closed a kept-alive "
                "connection just as the request went out (a browser does the same)."
            )
        st = s.get("stall")
        if st:
            out.append(
                f"{label}: the longest time in which no step finished while users waited on the hub was "
                f"{fmt_seconds(st['seconds'])} (t={st['from']:.0f}-{st['to']:.0f} s, {st['users_waiting']} waiting)."
            )
        if s["failures"]:
            g = s["failures"][0]
            out.append(f"{label}'s most common failure: {g['count']}x {g['phase']}: {g['reason']}.")
    ra, rb = meta["runs"][la], meta["runs"][lb]
    out.append(
        f"Hub-side CPU (hub process + proxy): {ra['hub_side_cpu_seconds']:.0f} s for {ha}, "
        f"{rb['hub_side_cpu_seconds']:.0f} s for {hb}; the rehearsal itself used {ra['rehearse_cpu_seconds']:.0f} s "
        f"and {rb['rehearse_cpu_seconds']:.0f} s of CPU on the same machine."
    )
    out.append(
        f"Load average (1 min) at the start: {ra['loadavg_start'][0]:.1f} ({ha}) and {rb['loadavg_start'][0]:.1f} "
        f"({hb}); at the end {ra['loadavg_end'][0]:.1f} and {rb['loadavg_end'][0]:.1f}, on {meta['cpus']} CPUs "
        "shared with other work."
    )
    return out


def write_docs(
    pairs: list[tuple[str, RunRecord, RunRecord, str]], meta: dict[str, Any], stamp: str, out: Path
) -> None:
    img_dir = DOCS / "benchmarks" / "rehearse"
    img_dir.mkdir(parents=True, exist_ok=True)
    rel = f"benchmarks/results/rehearse/{stamp}"
    page = [
        "# `hubkit rehearse` against hubkit and JupyterHub 6.1.1",
        "",
        f"Run {stamp} at commit `{meta['commit']}` with `python benchmarks/rehearse/run.py {' '.join(meta['argv'])}`; "
        f"raw results in `{rel}/` (`python -m hubkit_rehearse --from-json <result.json>` re-renders any of them).",
        "",
    ]
    section = [
        BEGIN,
        "## Rehearsing a class (issue 17): `hubkit rehearse` against hubkit and JupyterHub 6.1.1",
        "",
        f"Run {stamp}, commit `{meta['commit']}`, `benchmarks/rehearse/run.py` (this section is written by it from the "
        "kept results; `--docs-from STAMP` writes it again); full reports in "
        "[benchmarks/rehearse.md](benchmarks/rehearse.md), raw JSON in " + f"`{rel}/`.",
        "",
    ]
    for title, a, b, what in pairs:
        lines, tables = compare_tables(a, b)
        facts = findings(a, b, meta)
        images = []
        for run in (a, b):
            name = meta["runs"][run.tags["label"]]["dir"]
            dst = img_dir / f"{stamp}-{name}.png"
            timeline_png(run, dst, title=run.tags["label"])  # drawn from the kept result.json
            images.append(
                f"![{run.tags['label']}: users per phase and step latency over time](benchmarks/rehearse/{dst.name})"
            )
        section += [
            f"### {title}",
            "",
            what,
            "",
            *[f"- {f}" for f in facts],
            "",
            to_markdown(lines, tables),
            *images,
            "",
        ]
        page += [
            f"## {title}",
            "",
            what,
            "",
            *[f"- {f}" for f in facts],
            "",
            "### Side by side",
            "",
            to_markdown(lines, tables),
        ]
        for run in (a, b):
            rl, rt = run_tables(run)
            name = meta["runs"][run.tags["label"]]["dir"]
            page += [
                f"### {run.tags['label']}",
                "",
                to_markdown(rl, rt),
                f"![timeline](rehearse/{stamp}-{name}.png)",
                "",
            ]
    section.append(END)
    (DOCS / "benchmarks" / "rehearse.md").write_text("\n".join(page) + "\n")
    bench = DOCS / "benchmarks.md"
    text = bench.read_text()
    block = "\n".join(section)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    bench.write_text(text)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def many_text(args: argparse.Namespace) -> tuple[str, str]:
    return (
        f"{args.users} users, {args.shape} ramp over {args.ramp:g} s, concurrent_spawn_limit {args.limit}",
        f"Test servers that take {args.start_delay:g} s to start (hubkit's `test` spawner; the stand-in "
        "in-hub spawner on JupyterHub), reached through each hub's proxy (`--open api`); login through "
        f"the login form with a shared password, think {args.think} s, stop.",
    )


def lab_text(args: argparse.Namespace) -> tuple[str, str]:
    return (
        f"{args.lab_users} users with real JupyterLab, ramp {args.lab_ramp:g} s",
        "Local processes (hubkit: local spawner + hubkit-singleuser; JupyterHub: SimpleLocalProcessSpawner "
        "+ jupyterhub-singleuser), JupyterLab opened through the OAuth redirects, a kernel, three cells "
        f"checked, think {args.lab_think} s, stop. Both hubs wait up to {HTTP_TIMEOUT} s for a server to "
        f"answer and {START_TIMEOUT} s for it to start.",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--ramp", type=float, default=60)
    p.add_argument("--shape", default="bell")
    p.add_argument("--limit", type=int, default=50, help="concurrent_spawn_limit on both hubs")
    p.add_argument("--start-delay", type=float, default=5.0, help="pretend start-up of each test server (s)")
    p.add_argument("--think", default="10-30")
    p.add_argument("--lab-users", type=int, default=20)
    p.add_argument("--lab-ramp", type=float, default=60)
    p.add_argument("--lab-think", default="20")
    p.add_argument("--skip-many", action="store_true")
    p.add_argument("--skip-lab", action="store_true")
    p.add_argument("--no-docs", action="store_true", help="keep the results, leave docs/ alone")
    p.add_argument(
        "--docs-from", metavar="STAMP", help="only rewrite the docs from the kept results of that run"
    )
    return p


def docs_from(stamp: str) -> int:
    """The docs again from a kept run: the same figures, recomputed from its result files."""
    out = RESULTS / stamp
    meta = json.loads((out / "run.json").read_text())
    args = parser().parse_args(meta["argv"])
    runs = {label: RunRecord.load(out / info["dir"] / "result.json") for label, info in meta["runs"].items()}
    many = [r for r in runs.values() if "lab" not in Path(meta["runs"][r.tags["label"]]["dir"]).name]
    lab = [r for r in runs.values() if "lab" in Path(meta["runs"][r.tags["label"]]["dir"]).name]
    pairs = []
    for group, text in ((many, many_text(args)), (lab, lab_text(args))):
        if len(group) == 2:
            pairs.append((text[0], group[0], group[1], text[1]))
    write_docs(pairs, meta, stamp, out)
    return 0


def main() -> int:
    args = parser().parse_args()
    if args.docs_from:
        return docs_from(args.docs_from)
    # started in the background (SIGINT ignored) or stopped with SIGTERM: still run the finally blocks that
    # stop the hubs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    if chp_bin() is None:
        print("configurable-http-proxy is missing: bash .ci/setup/proxy.sh", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    out = RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"hubkit-rehearse-bench-{stamp}"
    meta: dict[str, Any] = {
        "commit": commit(),
        "argv": sys.argv[1:],
        "started": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "runs": {},
    }
    pairs: list[tuple[str, RunRecord, RunRecord, str]] = []
    try:
        if not args.skip_many:
            a, b = many_users(work, out, args, meta)
            title, what = many_text(args)
            pairs.append((title, a, b, what))
        if not args.skip_lab:
            a, b = lab_users(work, out, args, meta)
            title, what = lab_text(args)
            pairs.append((title, a, b, what))
    finally:
        meta["loadavg_at_end"] = list(os.getloadavg())
        (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(meta["runs"], indent=1))
    if not args.no_docs and pairs:
        write_docs(pairs, meta, stamp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
