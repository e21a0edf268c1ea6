"""Docker spawner benchmark: N servers requested at once through a real hub, hubkit-proxy and Docker engine.

    python benchmarks/docker/spawn_burst.py [--servers 20] [--limit 5 10 20] [--write]

For each concurrent-spawn limit: a fresh ``hubkit`` process (dummy auth, docker spawner in host network mode,
embedded hubkit-proxy) gets N users whose servers are all POSTed at once. It reports the time until every
server is ready (the hub's user model says ``ready``, which is after its readiness check and its route), the
spread of per-server ready times, and then the time to stop them all. The image is the locally built test image
(``.ci/setup/docker.sh``): JupyterLab + hubkit-singleuser. ``--write`` puts the table into
docs/benchmarks/docker.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def _hubctl() -> Any:
    spec = importlib.util.spec_from_file_location(
        "hubkit_tests_docker_hubctl", REPO / "tests/docker/hubctl.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_one(hubctl: Any, client: Any, image: str, servers: int, limit: int) -> dict[str, Any]:
    users = [f"b{i:03d}" for i in range(servers)]
    with tempfile.TemporaryDirectory(prefix="hubkit-docker-bench-") as tmp:
        hub = hubctl.HubProc(Path(tmp), image, {}, {"concurrent_spawn_limit": limit})
        with hubctl.running(hub, client), httpx.Client(base_url=hub.url, timeout=120) as c:
            admin = {"Authorization": f"token {hub.token('admin')}"}
            c.post("/hub/api/users", json={"usernames": users}, headers=admin).raise_for_status()
            burst = asyncio.run(hubctl.burst_start(hub.url, admin, users, limit=1200, tolerate_failures=True))
            bad = {u: s for u, s in burst.statuses.items() if s not in (201, 202)}
            if bad:
                raise SystemExit(f"spawns refused: {bad}\n{hub.log()[-3000:]}")
            ready = sorted(burst.ready_at.values()) or [float("nan")]
            t0 = time.monotonic()
            for u in users:
                c.delete(f"/hub/api/users/{u}/server", headers=admin)
            while hubctl.containers(client, hub.hub_id):
                if time.monotonic() - t0 > 300:
                    raise SystemExit("containers still there 300 s after stop")
                time.sleep(0.25)
            stop_all = time.monotonic() - t0
    return {
        "servers": servers,
        "limit": limit,
        "all_ready": burst.seconds,
        "ready": len(burst.ready_at),
        "failed": ", ".join(sorted(set(burst.failed.values()))) or "-",
        "first_ready": ready[0],
        "median_ready": statistics.median(ready),
        "stop_all": stop_all,
    }


def write_doc(rows: list[dict[str, Any]], image: str) -> Path:
    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    lines = [
        "# Docker spawner benchmarks",
        "",
        "`python benchmarks/docker/spawn_burst.py --write` (needs root for the Docker engine and the test image",
        "from `.ci/setup/docker.sh`). N servers are POSTed at once to a real `hubkit` process (dummy auth,",
        "docker spawner, host network, embedded hubkit-proxy; `http_timeout` 120 s). *All settled* is the time",
        "from the first request until every server is ready or has failed. A server counts as ready after its",
        "readiness check and its proxy route. Each server is JupyterLab + hubkit-singleuser in its own container",
        "with its own named home volume.",
        "",
        f"Machine: {platform.machine()}, {cpu} CPUs shared with other work (1-min load average {load:.1f} at the end),",
        f"Docker engine on the same host, image `{image}`.",
        "",
        "| servers | concurrent_spawn_limit | ready | failures | first ready (s) | median ready (s) | all settled (s) | stop all (s) |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['servers']} | {r['limit']} | {r['ready']} | {r['failed']} | {r['first_ready']:.1f} | {r['median_ready']:.1f} | "
            f"{r['all_ready']:.1f} | {r['stop_all']:.1f} |"
        )
    lines += [
        "",
        "Reading the numbers: a Jupyter server's start is CPU-bound (Python imports, extension loading). While the",
        "CPUs have room, a higher limit finishes a burst sooner. On saturated cores it does not, because each start",
        "gets a smaller share. Past `http_timeout`, spawns fail with `timeout-http` (see the loaded runs below). The",
        "concurrent-spawn limit keeps a burst inside what the machine can start in time. Users beyond the limit",
        "wait in the FIFO queue and see their position. Size the limit to the host's cores.",
        "",
    ]
    out = REPO / "docs" / "benchmarks" / "docker.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=20)
    ap.add_argument("--limit", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks/docker.md")
    args = ap.parse_args()
    hubctl = _hubctl()
    client = hubctl.docker_client()
    if client is None:
        raise SystemExit("no Docker engine answers; run .ci/setup/docker.sh as root")
    image = hubctl.find_test_image(client)
    if image is None:
        raise SystemExit("the test image is missing; run .ci/setup/docker.sh as root")
    rows = []
    for limit in args.limit:
        row = run_one(hubctl, client, image, args.servers, limit)
        rows.append(row)
        print(
            f"servers={row['servers']} limit={row['limit']}: ready {row['ready']} (failures: {row['failed']}), "
            f"first ready {row['first_ready']:.1f} s, "
            f"median {row['median_ready']:.1f} s, all settled {row['all_ready']:.1f} s, stop all {row['stop_all']:.1f} s",
            flush=True,
        )
    if args.write:
        print(f"wrote {write_doc(rows, image)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
