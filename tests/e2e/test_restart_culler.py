"""Real JupyterLab servers across a hub kill -9, and the culler with hubkit-singleuser's rich activity."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest
from hubkit_singleuser.testing import connect, execute, send_execute

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def new_kernel(hub: Any, user: str, token: str) -> str:
    r = httpx.post(
        f"{hub.url}/user/{user}/api/kernels",
        json={"name": "python3"},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_servers_and_kernel_state_survive_hub_kill9(make_hub: Any) -> None:
    hub = make_hub()
    hub.start()
    for u in ("alice", "bob"):
        hub.start_server(u)
    before = {u: hub.spawner_pids()[f"{u}/"]["pid"] for u in ("alice", "bob")}
    tokens = {u: hub.token(u) for u in ("alice", "bob")}
    kernels = {}
    for u, value in (("alice", 41), ("bob", 99)):
        kernels[u] = new_kernel(hub, u, tokens[u])
        ws = connect(f"{hub.url}/user/{u}/", kernels[u], {"Authorization": f"token {tokens[u]}"})
        try:
            execute(ws, f"x = {value}")
        finally:
            ws.close()

    hub.kill9()
    for u, pid in before.items():
        os.kill(pid, 0)  # still alive with the hub gone
        # and still served through the proxy, which also outlives the hub
        assert httpx.get(f"{hub.url}/user/{u}/api", timeout=10).status_code == 200

    hub.start()
    for u, pid in before.items():
        srv = hub.wait_server(u, ready=True, timeout=60)
        assert srv["url"] == f"/user/{u}/"
        assert hub.spawner_pids()[f"{u}/"]["pid"] == pid  # re-adopted, not restarted
    for u, expected in (("alice", "42"), ("bob", "100")):
        auth = {"Authorization": f"token {tokens[u]}"}
        listed = httpx.get(f"{hub.url}/user/{u}/api/kernels", headers=auth, timeout=30).json()
        assert kernels[u] in [k["id"] for k in listed]
        ws = connect(f"{hub.url}/user/{u}/", kernels[u], auth)
        try:
            assert execute(ws, "print(x + 1)").strip() == expected
        finally:
            ws.close()


@pytest.mark.parametrize(
    ("server_cmd", "spare_busy"),
    [("hubkit-singleuser", True), ("jupyterhub-singleuser", False)],
    ids=["hubkit-singleuser", "control-stock-singleuser"],
)
def test_culler_spares_busy_kernel_and_stops_idle_server(
    make_hub: Any, server_cmd: str, spare_busy: bool
) -> None:
    """hubkit-singleuser's rich activity (kernels_busy, last_busy) keeps a computing server alive. The control
    runs the same kernel under the stock jupyterhub-singleuser, which reports no such thing: it is culled, so
    the sparing really comes from those signals and this test can fail."""
    timeout = 20
    hub = make_hub(
        {
            "culler": {"enabled": True, "timeout": timeout, "every": 1},
            "spawner": {
                "cmd": [server_cmd],
                # report activity every second (the default is 300 s) so the test needs no long waits
                "environment": {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"},
            },
        }
    )
    hub.start()
    alice = hub.token("alice")  # before the servers start: the CLI is slow next to a 20 s idle limit
    hub.start_server("bob")
    hub.start_server("alice")
    kid = new_kernel(hub, "alice", alice)
    ws = connect(f"{hub.url}/user/alice/", kid, {"Authorization": f"token {alice}"})
    try:
        assert execute(ws, "print('warm')").strip() == "warm"
        send_execute(ws, "import time; time.sleep(300)")
        busy_since = time.monotonic()
        # bob's server is idle: the culler stops it after the idle limit
        hub.wait_server("bob", ready=False, timeout=120)
        if not spare_busy:
            hub.wait_server("alice", ready=False, timeout=120)
            return
        # alice's kernel has been busy (and otherwise silent) for longer than the idle limit: still running
        while time.monotonic() - busy_since < timeout + 5:
            time.sleep(0.5)
        with hub.admin as api:
            model = api.get("/users/alice").json()
        assert model["servers"].get("", {}).get("ready") is True, hub.log()[-3000:]
    finally:
        ws.close()
