"""N users' servers requested at once through the hub's spawn engine and a real Kubernetes control plane.

    .venv-test/bin/python benchmarks/k8s/bench_spawns.py --n 2000 --limit 100 --nodes 20

Needs the binaries of .ci/setup/k8s.sh. Starts its own control plane (etcd, kube-apiserver with an audit log,
kube-controller-manager, kube-scheduler) and the node agent (the stand-in for kubelets: it marks pods
running; 2,000 JupyterLab containers do not fit on this machine), runs the scenario of tests/k8s/scale.py, then
prints the figures, a conclusion computed from them, and writes the raw result (with the commit and the load
average) to benchmarks/results/k8s-<time>.json. ``--markdown`` prints the rows for docs/benchmarks/k8s.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hubkit_spawn_k8s.testing import ControlPlane  # noqa: E402

from tests.k8s.scale import ScaleResult, run_scale  # noqa: E402


def commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def conclusion(r: ScaleResult) -> list[str]:
    """Every sentence from this run's numbers."""
    out = []
    ready = r.outcomes.get("ready", 0)
    out.append(f"{ready} of {r.n} servers became ready in {r.seconds:.1f} s "
               f"({ready / r.seconds:.1f} per second) with concurrent_spawn_limit {r.limit} on {r.nodes} nodes.")
    verdict = "within" if r.max_starting <= r.limit else "ABOVE"
    out.append(f"At most {r.max_starting} pods were starting at once by the API server's record, {verdict} "
               f"the limit of {r.limit}; the last requests waited at queue position {r.max_queue_position}.")
    total_watches = sum(r.hub_watches.values())
    kinds = ", ".join(f"{v} on {k}" for k, v in sorted(r.hub_watches.items()))
    out.append(f"The hub opened {total_watches} watches in all ({kinds}) for {r.n} servers and never held more "
               f"than {r.hub_max_open_watches} open at once.")
    hub_total = sum(r.hub_requests.values())
    stop_total = sum(r.hub_stop_requests.values())
    out.append(f"To start them the hub made {hub_total} other requests ({hub_total / r.n:.1f} per server), and "
               f"{stop_total} to stop them ({stop_total / r.n:.1f} per server); the whole cluster served "
               f"{sum(r.apiserver_requests_by_verb.values())} requests while the servers started.")
    out.append(f"The hub's process used {r.hub_cpu_seconds:.1f} s of CPU while they started, "
               f"{1000 * r.hub_cpu_seconds / r.n:.0f} ms per spawn; stopping all, until the API server had no pod "
               f"nor token Secret left, took {r.stop_seconds:.1f} s.")
    return out


def markdown(r: ScaleResult, run: dict[str, Any]) -> str:
    verbs = ", ".join(f"{k} {v}" for k, v in sorted(r.apiserver_requests_by_verb.items()))
    hub = ", ".join(f"{k}: {v}" for k, v in sorted(r.hub_requests.items()))
    hub_stop = ", ".join(f"{k}: {v}" for k, v in sorted(r.hub_stop_requests.items()))
    rows = [
        "| measured | value |", "| --- | --- |",
        f"| servers requested at once / ready | {r.n} / {r.outcomes.get('ready', 0)} |",
        f"| concurrent_spawn_limit, nodes (node agent) | {r.limit}, {r.nodes} |",
        f"| all ready after (first request to last ready, s) | {r.seconds:.1f} |",
        f"| most pods starting at once (audit log: pod created → status Running) | {r.max_starting} |",
        f"| last queue position seen | {r.max_queue_position} |",
        f"| hub watches opened (by resource) / most open at once | "
        f"{', '.join(f'{k} {v}' for k, v in sorted(r.hub_watches.items()))} / {r.hub_max_open_watches} |",
        f"| hub's other requests until all ready (audit log, verb resource: count) | {hub} |",
        f"| hub's requests to stop them all (audit log) | {hub_stop} |",
        f"| API server requests by verb while starting, whole cluster (/metrics) | {verbs} |",
        f"| CPU of the hub's process while starting (s) / per spawn (ms) | {r.hub_cpu_seconds:.1f} / "
        f"{1000 * r.hub_cpu_seconds / r.n:.0f} |",
        f"| stop all, until the API server has no pod nor token Secret left (s) | {r.stop_seconds:.1f} |",
        f"| Kubernetes, commit, load average at the end | {r.kubernetes_version}, {run['commit']}, "
        f"{' / '.join(f'{x:.1f}' for x in r.load_average)} |",
    ]
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {s}" for s in conclusion(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=100, help="concurrent_spawn_limit")
    parser.add_argument("--nodes", type=int, default=20, help="node agent nodes (110 pods each)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hubkit-k8s-bench-") as tmp, \
            ControlPlane(Path(tmp) / "cluster", audit=True) as cluster:
        r = asyncio.run(run_scale(cluster, Path(tmp) / "run", args.n, args.limit, args.nodes))
    run = {"benchmark": "k8s/bench_spawns", "commit": commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "args": vars(args), "load_average_before": load_before, "result": r.as_dict(),
           "conclusion": conclusion(r)}
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"k8s-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(run, indent=2) + "\n")
    print(markdown(r, run) if args.markdown else json.dumps(run, indent=2))
    print(f"\nraw result: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
