"""Managed services from config alone, on a real hub process: the stock ``jupyterhub-idle-culler`` (from PyPI),
configured by the ``[[services]]`` table of examples/vm/hubkit.toml (shorter timeouts), culls an idle server; a service that exits at once is restarted with growing delays while the hub keeps
serving; a configured service token holds only its scopes; after ``kill -9`` of the hub the next hub stops
the culler it left behind and the old generated token dies with it; a stopping hub stops its services."""

from __future__ import annotations

import json
import re
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing import require
from svchub import BIN, alive, services_log_lines, wait_for

pytestmark = pytest.mark.timeout(180)

CULLER = BIN / "jupyterhub-idle-culler"
VM_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vm" / "hubkit.toml"
REPORTER_TOKEN = "reporter-0123456789abcdef"
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def vm_example_culler() -> dict[str, Any]:
    """The ``[[services]]`` culler of examples/vm/hubkit.toml, with its venv path and timings made fit for a test."""
    with open(VM_EXAMPLE, "rb") as f:
        (entry,) = [s for s in tomllib.load(f)["services"] if s["name"] == "idle-culler"]
    assert entry["command"][0] == "/opt/hubkit/venv/bin/jupyterhub-idle-culler"
    assert entry["scopes"] == CULLER_SCOPES and "api_token" not in entry  # the hub generates its token
    timing = {"--timeout=3600": "--timeout=3", "--cull-every=300": "--cull-every=1"}
    entry["command"] = [str(CULLER), *(timing.get(a, a) for a in entry["command"][1:])]
    assert entry["command"][1:] == ["--timeout=3", "--cull-every=1"], entry
    return entry


def services_toml() -> str:
    culler = vm_example_culler()
    return f"""
[[services]]
name = "{culler["name"]}"
command = {json.dumps(culler["command"])}
scopes = {json.dumps(culler["scopes"])}

[[services]]
name = "crashy"
command = ["{sys.executable}", "-c", "print('crashy starting', flush=True); raise SystemExit(4)"]

[[services]]
name = "reporter"
api_token = "{REPORTER_TOKEN}"
scopes = ["list:users"]
"""


def test_stock_culler_as_a_managed_service(make_hub):
    require(CULLER.exists(), "jupyterhub-idle-culler is not installed in the test environment")
    hub = make_hub(services_toml())
    hub.start()
    pid = hub.running_pid("idle-culler")
    assert any(
        b"jupyterhub-idle-culler" in part for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    )
    env = environ(pid)
    assert env["JUPYTERHUB_API_URL"] == hub.api and env["JUPYTERHUB_SERVICE_NAME"] == "idle-culler"
    assert "JUPYTERHUB_SERVICE_URL" not in env and "JUPYTERHUB_ACTIVITY_URL" not in env
    first_token = env["JUPYTERHUB_API_TOKEN"]
    model = hub.service("idle-culler")
    assert model["command"][0] == str(CULLER) and model["url"] == "" and model["prefix"] == ""
    assert model["kind"] == "service" and model["pid"] == pid

    # an idle server is culled by the stock culler, talking to the hub with the token the hub gave it
    with hub.admin() as api:
        assert api.post("/users/alice").status_code == 201
        assert api.post("/users/alice/server").status_code in (201, 202)
        wait_for(
            lambda: api.get("/users/alice").json()["servers"].get("", {}).get("ready"),
            30,
            "alice ready",
            hub.log,
        )
        wait_for(
            lambda: api.get("/users/alice").json()["servers"] == {}, 40, "alice's server culled", hub.log
        )
    culler_said = services_log_lines(hub.log(), "idle-culler")
    assert any(
        re.match(r"Culling server alice \(inactive for", line.split("] ", 1)[-1]) for line in culler_said
    ), culler_said[-20:]

    # a service that exits at once: logged, restarted after 1 s, then 2 s..., and the hub keeps serving
    wait_for(lambda: hub.log().count("service crashy (pid") >= 6, 30, "crashy restarted twice", hub.log)
    log = hub.log()
    assert "exited with status 4" in log and "restarting in 1s" in log and "restarting in 2s" in log
    assert "[crashy] crashy starting" in log
    crashy = hub.service("crashy")["hubkit_process"]
    assert crashy["last_exit"]["code"] == 4 and crashy["restarts"] >= 1
    assert httpx.get(f"{hub.url}/hub/api").status_code == 200

    # the configured token of an external service holds exactly its scopes
    with httpx.Client(base_url=hub.api, headers={"Authorization": f"token {REPORTER_TOKEN}"}) as rep:
        assert [u["name"] for u in rep.get("/users").json()] == ["admin", "alice"]  # admin: [hub] admin_users
        assert rep.delete("/users/alice/server").status_code == 403
        assert rep.post("/users/mallory").status_code == 403
        assert rep.get("/services").status_code == 403
        assert rep.get("/user").json()["name"] == "reporter"

    # kill -9: the next hub stops the culler its predecessor left, starts its own, and the old token is dead
    hub.stop(signal.SIGKILL)
    hub.start()
    second = hub.running_pid("idle-culler", not_pid=pid)
    wait_for(lambda: not alive(pid), 15, "the previous culler stopped", hub.log)
    with httpx.Client(base_url=hub.api) as c:
        assert c.get("/user", headers={"Authorization": f"token {first_token}"}).status_code == 403
        me = c.get("/user", headers={"Authorization": f"token {environ(second)['JUPYTERHUB_API_TOKEN']}"})
        assert me.status_code == 200 and me.json()["name"] == "idle-culler"

    # a hub that stops stops its services
    hub.stop()
    wait_for(lambda: not alive(second), 15, "the culler stopped with the hub", hub.log)
    assert "service idle-culler (pid" in hub.log() and "stopped (status" in hub.log()
