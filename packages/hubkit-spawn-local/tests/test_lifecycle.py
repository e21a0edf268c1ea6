"""start / poll / stop / state / re-adoption with real processes (real jupyter-server for the server tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hubkit.errors import SpawnFailed
from hubkit.testing import require
from local_harness import SINGLEUSER, Ctx, make_spec, poll_until_dead, wait_http

from hubkit_spawn_local import procinfo

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


async def test_start_poll_stop_real_singleuser(make_spawner) -> None:  # type: ignore[no-untyped-def]
    require(SINGLEUSER is not None, "hubkit-singleuser not installed")
    sp = make_spawner(env_keep=["PATH", "LANG"])
    spec = make_spec(env={"HUBKIT_SINGLEUSER_APP": "server"})
    ctx = Ctx()
    result = await sp.start(spec, ctx)
    state = result.state
    # state was persisted before the process existed, and again with the pid right after
    assert ctx.saved[0]["pid"] is None and ctx.saved[0]["port"] == state["port"]
    assert ctx.saved[-1]["pid"] == state["pid"] == state["pgid"]
    assert state["start_time"] == procinfo.start_time(state["pid"])
    assert result.endpoint.url == f"http://127.0.0.1:{state['port']}"
    assert os.getsid(state["pid"]) == state["pid"]  # own session: a hub crash does not take it down
    assert wait_http(f"{result.endpoint.url}/user/alice/api") == 200
    environ = Path(f"/proc/{state['pid']}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://127.0.0.1:{state['port']}/user/alice/"
    assert env["USER"] and env["HOME"] and env["SHELL"]
    assert "JUPYTERHUB_API_TOKEN" in env and "VIRTUAL_ENV_PROMPT" not in env
    assert await sp.poll(spec, state) is None
    await sp.stop(spec, state)
    assert not procinfo.group_alive(state["pgid"])
    status = await sp.poll(spec, state)
    assert status is not None
    assert sp.index.load() == {}


async def test_readopt_after_hub_killed(make_spawner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A separate "hub" process starts the server and is killed -9; a new spawner works from state alone."""
    sp = make_spawner()
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from local_harness import Ctx, make_spec
        from hubkit_spawn_local import LocalSpawner, LocalSpawnerConfig
        from hubkit.plugins.registry import HubInfo
        hub = HubInfo(**json.loads(sys.argv[1]))
        sp = LocalSpawner(config=LocalSpawnerConfig(home_dir={str(tmp_path / "h")!r}), hub=hub)
        spec = make_spec(cmd=(sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"))
        r = asyncio.run(sp.start(spec, Ctx()))
        print(json.dumps(r.state), flush=True)
        import time
        time.sleep(600)
        """
    )
    hub_fields = {
        k: getattr(sp.hub, k) for k in ("hub_id", "data_dir", "hub_api_url", "hub_url", "public_url")
    }
    hub = subprocess.Popen([sys.executable, "-c", script, json.dumps(hub_fields)], stdout=subprocess.PIPE)
    try:
        assert hub.stdout is not None
        state = json.loads(hub.stdout.readline())
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
    spec = make_spec()
    assert await sp.poll(spec, state) is None  # still running although its hub is gone
    report = await sp.reconcile([], remove_orphans=False)
    assert any(str(state["pid"]) in r for r in report.reported)
    await sp.stop(spec, state)
    assert not procinfo.group_alive(state["pgid"])
    assert (await sp.poll(spec, state)) is not None


async def test_hub_killed_between_fork_and_saving_the_pid(make_spawner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The hub dies right after the fork, before it saved the pid: only the state saved before the fork is known.
    A new spawner still finds the server (by the instance marker saved first), reports it as an orphan and stops
    it, so a restarted hub neither leaves it running nor starts a second one next to it."""
    sp = make_spawner()
    script = textwrap.dedent(
        f"""
        import asyncio, json, os, signal, subprocess, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from local_harness import make_spec
        from hubkit_spawn_local import LocalSpawner, LocalSpawnerConfig, spawner
        from hubkit.plugins.registry import HubInfo

        class Ctx:
            async def emit(self, event): pass
            async def save_state(self, state): print(json.dumps(state), flush=True)

        real_popen = subprocess.Popen
        def popen_then_die(*args, **kwargs):
            real_popen(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # the exact point: forked, pid not saved anywhere
        spawner.subprocess.Popen = popen_then_die
        hub = HubInfo(**json.loads(sys.argv[1]))
        sp = LocalSpawner(config=LocalSpawnerConfig(home_dir={str(tmp_path / "h")!r}), hub=hub)
        spec = make_spec(cmd=(sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"))
        asyncio.run(sp.start(spec, Ctx()))
        """
    )
    hub_fields = {
        k: getattr(sp.hub, k) for k in ("hub_id", "data_dir", "hub_api_url", "hub_url", "public_url")
    }
    hub = subprocess.run(
        [sys.executable, "-c", script, json.dumps(hub_fields)], capture_output=True, text=True, timeout=60
    )
    assert hub.returncode == -signal.SIGKILL, hub.stderr
    saved = [json.loads(line) for line in hub.stdout.splitlines()]
    assert len(saved) == 1 and saved[0]["pid"] is None  # what the hub's database holds
    state = saved[0]
    marker = f"HUBKIT_SERVER_INSTANCE={state['instance']}".encode()
    deadline = time.monotonic() + 10
    while not procinfo.with_environ_entry(marker):  # the child execs on its own after its hub died
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.05)
    spec = make_spec()
    report = await sp.reconcile([], remove_orphans=False)
    assert len(report.reported) == 1 and report.reported[0].startswith("alice/")
    await sp.stop(spec, state)
    assert procinfo.with_environ_entry(marker) == []
    assert await sp.poll(spec, state) is not None


async def test_failing_command_log_tail(make_spawner) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner()
    spec = make_spec(cmd=("sh", "-c", "echo line-one; echo 'boom: no module named nowhere' >&2; exit 3"))
    state = (await sp.start(spec, Ctx())).state
    status = await poll_until_dead(sp, spec, state)
    assert status.code == 3 and "code 3" in status.reason
    # the exit reason (which the core puts into the failure message) carries the last log lines
    assert "boom: no module named nowhere" in status.reason
    tail = await sp.log_tail(spec, state, 5)
    assert tail[-2:] == ["line-one", "boom: no module named nowhere"]
    # a second run appends, and the tail shows only the newest run
    state2 = await sp.start(make_spec(cmd=("sh", "-c", "echo second-run; exit 1")), Ctx())
    await poll_until_dead(sp, spec, state2.state)
    assert await sp.log_tail(spec, state2.state, 5) == ["second-run"]
    await sp.stop(spec, state2.state)  # stopping a dead server is fine


async def test_missing_command_is_a_clear_failure(make_spawner) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner(cmd=["no-such-server-command-xyz"])
    with pytest.raises(SpawnFailed) as e:
        await sp.start(make_spec(), Ctx())
    assert e.value.reason_code == "command-not-found"
    assert "no-such-server-command-xyz" in str(e.value)


async def test_recycled_pid_is_not_ours(make_spawner) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner()
    me = os.getpid()
    fake = {"pid": me, "pgid": os.getpgid(me), "start_time": (procinfo.start_time(me) or 0) + 1}
    status = await sp.poll(make_spec(), fake)
    assert status is not None and "another process" in status.reason
    await sp.stop(make_spec(), fake)  # must not signal the unrelated process (us)
    assert procinfo.is_ours_and_alive(me, procinfo.start_time(me))


async def test_stop_escalates_to_sigkill(make_spawner) -> None:  # type: ignore[no-untyped-def]
    sp = make_spawner(stop_grace_seconds=0.5)
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(600)"
    spec = make_spec(cmd=(sys.executable, "-c", code))
    state = (await sp.start(spec, Ctx())).state
    import anyio

    with anyio.fail_after(20):
        while "ready" not in "".join(await sp.log_tail(spec, state)):
            await anyio.sleep(0.05)
    await sp.stop(spec, state)
    assert not procinfo.group_alive(state["pgid"])
    status = await sp.poll(spec, state)
    assert status is not None and status.code == -9


async def test_reconcile_removes_orphans_and_reports_missing(make_spawner) -> None:  # type: ignore[no-untyped-def]
    from hubkit.interfaces import KnownServer

    sp = make_spawner()
    sleeper = (sys.executable, "-c", "import time; time.sleep(600)")
    a, b = make_spec("alice", cmd=sleeper), make_spec("bob", cmd=sleeper)
    sa = (await sp.start(a, Ctx())).state
    sb = (await sp.start(b, Ctx())).state
    dead = make_spec("carol")
    report = await sp.reconcile(
        [KnownServer(a, sa), KnownServer(dead, {"pid": 999999999, "pgid": 999999999})], remove_orphans=True
    )
    assert report.adopted == ("alice/",)
    assert report.missing == ("carol/",)
    assert len(report.removed) == 1 and "bob/" in report.removed[0]
    assert not procinfo.group_alive(sb["pgid"])
    assert procinfo.group_alive(sa["pgid"])
    await sp.stop(a, sa)
