"""Time from ``kill -9`` of the embedded hubkit-proxy to the first request routed again through its public port.

The hub's routing plugin runs here as the hub runs it (``restart_on_exit``, journal in the data dir), with 200
routes to the nginx backend. Each kill is timed until a GET of a user route answers 200, polled every 5 ms
on new connections. Usage: python benchmarks/proxy/restart.py [--kills 10]; raw JSON in benchmarks/results/proxy/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record
from stack import Stack


async def routed(port: int, path: str) -> bool:
    """One GET on a new connection, as cheap as possible (the poll must not slow the restart it times)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def measure(kills: int, routes: int, standby: bool) -> dict[str, Any]:
    from hubkit.interfaces import Route
    from hubkit.plugins.registry import HubInfo
    from hubkit_proxy import launcher
    from hubkit_proxy.plugin import HubkitProxyBackend, HubkitProxyConfig

    tmp = Path(tempfile.mkdtemp(prefix="proxy-restart-"))
    stack = Stack(tmp)
    stack.start_backends()
    backend = stack.http_url("direct")
    hub = HubInfo(
        hub_id="bench",
        data_dir=str(tmp / "data"),
        hub_api_url=backend,
        hub_url=backend,
        public_url="",
        public_port=0,
    )
    plugin = HubkitProxyBackend(
        HubkitProxyConfig(api_url="http://127.0.0.1:0", restart_on_exit=True, standby=standby), hub
    )
    times: list[float] = []
    api_back: list[float] = []  # kill -> the plugin saw the new proxy's API answer
    try:
        await plugin.startup()
        for i in range(routes):
            await plugin.add_route(Route(f"/user/u{i}/", backend, {"user": f"u{i}", "server_name": ""}))
        port, path = plugin.public_port, f"/user/u{routes // 2}/x"
        for _ in range(kills):
            pid = launcher.read_pid(plugin.pid_file)
            assert pid is not None
            plugin.restarted.clear()
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            watch = asyncio.create_task(plugin.restarted.wait())
            watch.add_done_callback(lambda _t, t0=t0: api_back.append(time.monotonic() - t0))
            while not (await routed(port, path) and launcher.read_pid(plugin.pid_file) != pid):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            times.append(time.monotonic() - t0)
            await asyncio.wait_for(watch, 10)
            await asyncio.sleep(1.5)  # the next standby gets ready before the next kill
            print(
                f"routed again after {times[-1] * 1000:.0f} ms, API answering after {api_back[-1] * 1000:.0f} ms "
                f"(load {record.load1()})",
                flush=True,
            )
    finally:
        await plugin.shutdown()
        plugin.stop_proxy()
        stack.stop()
    return {
        "routes": routes,
        "standby": standby,
        "seconds": times,
        "api_seconds": api_back,
        "median_s": statistics.median(times),
        "max_s": max(times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--routes", type=int, default=200)
    p.add_argument(
        "--no-standby", action="store_true", help="measure the cold restart (a new Python process)"
    )
    args = p.parse_args()
    load0 = record.machine()
    res = asyncio.run(measure(args.kills, args.routes, not args.no_standby))
    out = {"kind": "proxy-restart", "commit": record.commit(), "machine": load0, "restart": res}
    out["machine"]["loadavg_end"] = list(os.getloadavg())
    path = record.save("proxy", out)
    s = res["seconds"]
    print(
        f"kill -9 of the embedded hubkit-proxy ({res['routes']} routes, "
        f"{'warm standby' if res['standby'] else 'no standby'}) -> routed again: median "
        f"{res['median_s'] * 1000:.0f} ms, range {min(s) * 1000:.0f}-{max(s) * 1000:.0f} ms over {len(s)} kills; "
        f"load average {load0['loadavg'][0]:.2f} -> {out['machine']['loadavg_end'][0]:.2f}. Raw: {path}"
    )


if __name__ == "__main__":
    main()
