"""Time N simultaneous spawns through the hub's spawn engine against the fake Kubernetes API server.

    /work/venv/bin/python benchmarks/k8s/bench_spawns.py --n 500 --limit 50

Prints wall time, spawns/s, the most pods starting at once (bounded by the queue's limit), and watch and
API request counts. Figures go into docs/benchmarks/k8s.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.k8s.scale import run_scale  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--limit", type=int, action="append", help="concurrent_spawn_limit (repeatable)")
    parser.add_argument("--pull", type=float, default=0.02, help="seconds each fake image pull takes")
    args = parser.parse_args()
    print("| spawns | concurrent_spawn_limit | pull (s) | seconds | spawns/s | max pods starting | pod watches | event watches | API requests |")
    print("|---|---|---|---|---|---|---|---|---|")
    for limit in args.limit or [50]:
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(run_scale(Path(tmp), args.n, limit, args.pull))
        assert r.outcomes == {"ready": args.n}, r.outcomes
        calls = ", ".join(f"{k}: {v}" for k, v in sorted(r.api_requests.items()))
        print(f"| {r.n} | {limit} | {r.pull_seconds:g} | {r.seconds:.1f} | {r.n / r.seconds:.1f} | {r.max_starting} | "
              f"{r.watch_requests['pods']} (max {r.watch_max_active['pods']} open) | "
              f"{r.watch_requests['events']} (max {r.watch_max_active['events']} open) | {calls} |", flush=True)


if __name__ == "__main__":
    main()
