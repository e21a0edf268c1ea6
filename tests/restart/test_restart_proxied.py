"""Restart safety through a real proxy: 20 servers routed by hubkit-proxy, ``kill -9`` the hub, start it again.

The proxy and the user servers outlive the hub: while the hub is dead every server still answers through the
proxy, and after the restart all 20 are re-adopted and still routed, with the hub answering at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from hubkit.testing.processes import (
    cli_token,
    cpu_seconds,
    hub_api,
    launch_hub_cli,
    pid_alive,
    wait_log,
)
from hubkit_proxy import launcher

pytestmark = [pytest.mark.timeout(240)]
N = 20
HUB_ENV = {"HUBKIT_PLUGINS": "proxy"}  # the core plus hubkit-proxy's routing plugin


def _config(tmp: Path, public: int, hub: int, api: int) -> Path:
    config = tmp / "hubkit.toml"
    config.write_text(
        f"""
[hub]
port = {public}
hub_port = {hub}
data_dir = "{tmp / "data"}"
db_url = "sqlite:///hub.sqlite"
admin_users = ["boss"]

[spawner]
backend = "test"
poll_interval = 1
adopt_concurrency = 5

[spawner.test]
mode = "process"

[proxy]
backend = "hubkit-proxy"
check_interval = 1

[proxy.hubkit-proxy]
api_url = "http://127.0.0.1:{api}"
"""
    )
    return config


def _all_answer_through_proxy(public: int, names: list[str]) -> list[str]:
    """Names whose server did NOT answer 200 through the proxy."""
    bad = []
    with httpx.Client(timeout=5) as client:
        for name in names:
            r = client.get(f"http://127.0.0.1:{public}/user/{name}/api")
            # the tiny server names its owner: proves the route leads to the right server
            if r.status_code != 200 or r.json().get("user") != name:
                bad.append(f"{name}: {r.status_code} {r.text[:80]}")
    return bad


def test_kill_9_keeps_servers_routed_through_hubkit_proxy(tmp_path: Path) -> None:
    ports = {"port": 0, "hub_port": 0, "api_port": 0}  # port 0: the hub and its proxy report what they got

    def pin(got: dict[str, int]) -> None:  # the restarted hub must come back on the same ports
        ports.update(got)
        _config(tmp_path, ports["port"], ports["hub_port"], ports["api_port"])

    config = _config(tmp_path, 0, 0, 0)
    names = [f"p{i:02d}" for i in range(N)]
    pids: list[int] = []
    proc = None

    def start(log: str, learn: bool) -> tuple[subprocess.Popen[bytes], float]:
        return launch_hub_cli(
            config,
            tmp_path / log,
            HUB_ENV,
            health=lambda: f"http://127.0.0.1:{ports['hub_port']}/hub/health",
            data_dir=tmp_path / "data",
            learn_ports=learn,
            on_ports=pin,
        )

    try:
        proc, _ = start("hub.log", learn=True)
        public, hub = ports["port"], ports["hub_port"]
        token = cli_token(config, "boss", HUB_ENV)
        assert hub_api(hub, token, "POST", "/users", {"usernames": names}).status_code == 201
        for name in names:
            assert hub_api(hub, token, "POST", f"/users/{name}/server").status_code in (201, 202)
        deadline = time.monotonic() + 90
        for name in names:
            while not hub_api(hub, token, "GET", f"/users/{name}").json()["servers"].get("", {}).get("ready"):
                assert time.monotonic() < deadline, f"{name} never became ready"
                time.sleep(0.1)
        routes = hub_api(hub, token, "GET", "/proxy").json()
        assert {f"/user/{n}/" for n in names} <= set(routes)
        assert _all_answer_through_proxy(public, names) == []
        for name in names:
            state = hub_api(hub, token, "GET", f"/users/{name}/server").json().get("state") or {}
            if isinstance(state.get("pid"), int):
                pids.append(state["pid"])
        assert len(pids) == N and all(pid_alive(p) for p in pids)

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # the hub is dead: the proxy still routes every server
        assert _all_answer_through_proxy(public, names) == []

        proc, answered = start("hub2.log", learn=False)
        cpu = cpu_seconds(proc.pid)
        print(f"restarted hub answered in {answered:.2f} s ({cpu:.2f} s CPU)")  # speed: benchmarks/core
        wait_log(tmp_path / "hub2.log", f"adopted {N} servers", limit=60)
        routes = hub_api(hub, token, "GET", "/proxy").json()
        assert {f"/user/{n}/" for n in names} <= set(routes)
        assert _all_answer_through_proxy(public, names) == []
        for name in names:
            server = hub_api(hub, token, "GET", f"/users/{name}").json()["servers"][""]
            assert server["ready"] is True
        assert all(pid_alive(p) for p in pids)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        for pid in pids:
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        launcher.stop(str(tmp_path / "data" / "hubkit-proxy.pid"))
