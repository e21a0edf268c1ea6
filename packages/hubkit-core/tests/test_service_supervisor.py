"""Managed services: started with their environment and a token stored hashed, restarted with growing delays
when they die, stopped (process group and token) with the hub, and a process a killed hub left behind is
stopped before a new one starts. Real child processes throughout."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hubkit.auth.identity import from_token
from hubkit.config.models import ServiceConfig
from hubkit.hubservices import process
from hubkit.hubservices.supervisor import Backoff, ServiceSupervisor
from hubkit.storage.orm import Service
from hubkit.testing.plugin import make_settings
from sqlalchemy import select

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

# writes its environment and pid, then lives until signalled (and leaves a grandchild in its group)
RECORDER = """
import json, os, subprocess, sys, time
out = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(out + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "child": child.pid, "env": dict(os.environ)}, f)
os.replace(out + ".tmp", out)
print("recorder up", flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): it is dead for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def wait_until(cond, within: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not met within {within}s")


def read_record(path: Path) -> dict:
    return json.loads(path.read_text())


async def service_row(hub, name: str) -> Service:
    async with hub.db() as s:
        return (await s.execute(select(Service).where(Service.name == name))).scalar_one()


async def test_a_managed_service_runs_restarts_and_stops_with_the_hub(tmp_path, hub_factory, caplog):
    caplog.set_level(logging.INFO, logger="hubkit.services")
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    out = tmp_path / "record.json"
    settings = make_settings(
        tmp_path / "hub",
        services=[
            {
                "name": "recorder",
                "url": "http://127.0.0.1:10101",
                "command": [sys.executable, str(script), str(out)],
                "environment": {"GREETING": "hi"},
                "scopes": ["list:users"],
            }
        ],
    )
    hub = await hub_factory(settings)
    await wait_until(out.exists, what="the service started")
    first = read_record(out)
    env = first["env"]
    assert env["JUPYTERHUB_SERVICE_NAME"] == "recorder" and env["GREETING"] == "hi"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/recorder/"
    assert env["JUPYTERHUB_CLIENT_ID"] == "service-recorder"
    assert env["JUPYTERHUB_API_URL"].endswith("/hub/api")
    token = env["JUPYTERHUB_API_TOKEN"]
    ident = await from_token(hub.storage, token)
    assert ident is not None and ident.kind == "service" and ident.name == "recorder"
    assert set(ident.scopes) == {"list:users", "read:users:name"}
    row = await service_row(hub, "recorder")
    assert row.process["state"] == "running" and row.process["pid"] == first["pid"]
    assert row.process["host"] == process.host_id()
    # the output reaches the hub's log, named
    await wait_until(lambda: "[recorder] recorder up" in caplog.text, what="output logged")

    # it dies: logged, and started again after the first backoff delay, with the same token
    out.unlink()
    os.kill(first["pid"], signal.SIGKILL)
    await wait_until(out.exists, what="the service restarted")
    second = read_record(out)
    assert second["pid"] != first["pid"] and second["env"]["JUPYTERHUB_API_TOKEN"] == token
    assert "exited with status -9" in caplog.text
    row = await service_row(hub, "recorder")
    assert row.process["restarts"] == 1 and row.process["last_exit"]["code"] == -9
    assert not alive(first["pid"])
    await wait_until(lambda: not alive(first["child"]), what="what it left in its process group stopped")

    # the hub stops: the service and everything in its process group stop too, its token is revoked
    await hub.stop()
    assert not alive(second["pid"]) and not alive(second["child"])
    hub2 = await hub_factory(make_settings(tmp_path / "hub"))  # same database, services no longer configured
    assert await from_token(hub2.storage, token) is None
    async with hub2.db() as s:
        assert (await s.execute(select(Service))).scalars().all() == []


async def test_a_service_that_exits_at_once_is_restarted_with_growing_delays(tmp_path, hub, caplog):
    caplog.set_level(logging.INFO, logger="hubkit.services")
    starts = tmp_path / "starts"
    code = f"import time; open({str(starts)!r}, 'a').write(f'{{time.monotonic()}}\\n'); raise SystemExit(3)"
    svc = ServiceConfig(name="crashy", command=[sys.executable, "-c", code])
    async with hub.db() as s:
        s.add(Service(name="crashy", process={}, command=svc.command))
        await s.commit()
    sup = ServiceSupervisor(
        hub.storage, hub.urls, [svc], api_url="http://127.0.0.1:1/hub/api", backoff=Backoff(0.1, 0.8, 60)
    )
    task = asyncio.create_task(sup.run())
    await wait_until(lambda: starts.exists() and len(starts.read_text().split()) >= 4, what="four starts")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1 and gaps[2] >= 0.4 and gaps[2] > gaps[0], gaps  # 0.1, 0.2, 0.4, ...
    assert caplog.text.count("exited with status 3") >= 3
    assert "restarting in" in caplog.text
    row = await service_row(hub, "crashy")
    assert row.process["state"] == "stopped" and row.process["last_exit"]["code"] == 3
    assert row.process["restarts"] >= 3


async def test_a_command_that_cannot_start_is_retried_and_reported(tmp_path, hub, caplog):
    svc = ServiceConfig(name="missing", command=[str(tmp_path / "no-such-program")])
    async with hub.db() as s:
        s.add(Service(name="missing", process={}, command=svc.command))
        await s.commit()
    sup = ServiceSupervisor(
        hub.storage, hub.urls, [svc], api_url="http://x/hub/api", backoff=Backoff(0.05, 0.1)
    )
    task = asyncio.create_task(sup.run())
    await wait_until(lambda: caplog.text.count("cannot start") >= 2, what="two attempts")
    row = await service_row(hub, "missing")
    assert row.process["state"] == "failed-to-start" and "No such file" in row.process["error"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


async def test_a_process_left_by_a_killed_hub_is_stopped_first(tmp_path, hub):
    orphan, stranger = sleeper(), sleeper()
    try:
        ticks, other = process.start_ticks(orphan.pid), process.start_ticks(stranger.pid)
        assert ticks is not None and other is not None
        async with hub.db() as s:
            for name, pid, t in (("left", orphan.pid, ticks), ("recycled", stranger.pid, other - 100)):
                record = {"state": "running", "host": process.host_id(), "pid": pid, "ticks": t}
                s.add(Service(name=name, process=record, command=["x"]))
            await s.commit()
        sup = ServiceSupervisor(hub.storage, hub.urls, [], api_url="http://x/hub/api", stop_timeout=5)
        await sup._leftover("left")
        await sup._leftover("recycled")  # same pid, another start time: not ours, never signalled
        assert orphan.wait(5) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for p in (orphan, stranger):
            p.kill()
            p.wait()
