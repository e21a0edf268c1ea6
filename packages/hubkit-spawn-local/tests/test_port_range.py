"""``port_range``: real JupyterLab servers on ports from the operator's range, never on a port another server
of the hub or another program holds, a retry when another program takes the port during start, and clear
errors for a bad range or a full one.

The ranges are taken below 32768, outside Linux's ephemeral range, so the kernel never hands one of their
ports to another program's outgoing connection while a test runs.
"""

from __future__ import annotations

import os
import random
import socket
import stat
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit.errors import ConfigError, SpawnFailed
from hubkit.plugins.hooks import collect_registries
from hubkit.plugins.manager import build_plugin_manager
from hubkit.runtime.backends import validate_backend_config
from hubkit.testing import require
from local_harness import SINGLEUSER, Ctx, make_spec, wait_http

from hubkit_spawn_local import procinfo
from hubkit_spawn_local.ports import PortRange, bindable

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


def free_run(n: int) -> int:
    """The first port of ``n`` consecutive ports that can all be bound now, below the ephemeral range."""
    for _ in range(200):
        low = random.randrange(20000, 32000 - n)
        if all(bindable(p) for p in range(low, low + n)):
            return low
    raise AssertionError("no run of free ports found")


@pytest.fixture
def listener() -> Iterator[object]:
    """``listen(port)``: a socket listening on 127.0.0.1:port, as another program on the machine would."""
    held: list[socket.socket] = []

    def listen(port: int) -> socket.socket:
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        held.append(s)
        return s

    yield listen
    for s in held:
        s.close()


def lab_log(state: dict[str, object]) -> str:
    return Path(str(state["log_path"])).read_text(errors="replace")


async def test_servers_get_distinct_free_ports_from_the_range(make_spawner, listener) -> None:  # type: ignore[no-untyped-def]
    require(SINGLEUSER is not None, "hubkit-singleuser not installed")
    low = free_run(3)
    listener(low + 1)  # another program holds the middle port
    sp = make_spawner(port_range=[low, low + 2], env_keep=["PATH", "LANG"])
    specs = {name: make_spec(user=name) for name in ("alice", "bob", "carol")}
    started = {}
    for name in ("alice", "bob"):
        result = await sp.start(specs[name], Ctx())
        started[name] = result.state
        assert wait_http(f"{result.endpoint.url}/user/{name}/api") == 200
    ports = {st["port"] for st in started.values()}
    assert ports == {low, low + 2}, ports  # distinct, inside the range, not the held one
    assert "JupyterLab" in lab_log(started["alice"])  # a real JupyterLab server
    # the range is full: a clear spawn failure naming it
    with pytest.raises(SpawnFailed) as exc:
        await sp.start(specs["carol"], Ctx())
    assert exc.value.reason_code == "no-free-port"
    assert f"port_range [{low}, {low + 2}]" in str(exc.value)
    # a stopped server's port is free again (TIME_WAIT of its connections notwithstanding)
    await sp.stop(specs["alice"], started["alice"])
    result = await sp.start(specs["carol"], Ctx())
    assert result.state["port"] == started["alice"]["port"]
    assert wait_http(f"{result.endpoint.url}/user/carol/api") == 200
    for name, st in (("bob", started["bob"]), ("carol", result.state)):
        await sp.stop(specs[name], st)
        assert not procinfo.group_alive(st["pgid"])


SQUATTER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2] + ".tmp", "w").write(str(__import__("os").getpid()))
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(120)  # bounded: gone by itself if the test dies
"""

WRAPPER = """#!/bin/sh
# The first start only: another program (its own session) takes the chosen port right before the server
# binds it, which is what happens when something grabs a port between the bind test and the server's bind.
if [ ! -e "$SQUAT_MARKER" ]; then
  touch "$SQUAT_MARKER"
  port=$({py} -c 'import os, urllib.parse; print(urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port)')
  setsid {py} {squatter} "$port" "$SQUAT_PIDFILE" &
  n=0
  while [ ! -e "$SQUAT_PIDFILE" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
fi
exec {singleuser} "$@"
"""


async def test_port_taken_during_start_is_retried(make_spawner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require(SINGLEUSER is not None, "hubkit-singleuser not installed")
    (tmp_path / "squat.py").write_text(SQUATTER)
    wrapper = tmp_path / "server.sh"
    wrapper.write_text(
        textwrap.dedent(WRAPPER).format(py=sys.executable, squatter=tmp_path / "squat.py", singleuser=SINGLEUSER)
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    pidfile = tmp_path / "squatter.pid"
    low = free_run(2)
    sp = make_spawner(port_range=[low, low + 1], env_keep=["PATH", "LANG"], cmd=[str(wrapper)])
    spec = make_spec(env={"SQUAT_MARKER": str(tmp_path / "squatted"), "SQUAT_PIDFILE": str(pidfile)})
    ctx = Ctx()
    try:
        result = await sp.start(spec, ctx)
        squatter = int(pidfile.read_text())
        taken = [e for e in ctx.events if "taken by another program" in e.message]
        assert len(taken) == 1, [e.message for e in ctx.events]
        lost = taken[0].detail["port"]
        assert lost in (low, low + 1) and result.state["port"] == ({low, low + 1} - {lost}).pop()
        assert procinfo.is_ours_and_alive(squatter, None)  # the other program was left alone
        assert wait_http(f"{result.endpoint.url}/user/alice/api") == 200
        await sp.stop(spec, result.state)
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), 9)
            except ProcessLookupError:
                pass


async def test_full_range_fails_at_once(make_spawner, listener) -> None:  # type: ignore[no-untyped-def]
    low = free_run(1)
    listener(low)
    sp = make_spawner(port_range=[low, low], cmd=[sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(SpawnFailed) as exc:
        await sp.start(make_spec(), Ctx())
    assert exc.value.reason_code == "no-free-port"
    assert "all 1 are taken" in str(exc.value)
    assert sp.index.load() == {}  # nothing was started


def test_pick_skips_taken_and_busy_ports(listener) -> None:  # type: ignore[no-untyped-def]
    low = free_run(4)
    listener(low)
    rng = PortRange(low, low + 3)
    seen = {rng.pick({low + 1}) for _ in range(40)}
    assert seen <= {low + 2, low + 3} and seen  # never the listened-on port nor one said taken
    assert rng.pick({low + 1, low + 2, low + 3}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([40000], "takes two ports"),
        ([1, 2, 3], "takes two ports"),
        ([49999, 40000], "is reversed: write [40000, 49999]"),
        ([0, 100], "port 0 in port_range is outside 1..65535"),
        ([40000, 70000], "port 70000 in port_range is outside 1..65535"),
        (["40000", "49999"], "valid integer"),
        ("40000-49999", "valid list"),
    ],
)
def test_bad_port_range_is_a_clear_config_error(value: object, message: str) -> None:
    registries = collect_registries(build_plugin_manager())
    with pytest.raises(ConfigError) as exc:
        validate_backend_config(registries.spawners, "local", {"port_range": value})
    assert "spawner.local.port_range" in str(exc.value)
    assert message in str(exc.value)


def test_good_port_range_and_default() -> None:
    registries = collect_registries(build_plugin_manager())
    cfg = validate_backend_config(registries.spawners, "local", {"port_range": [40000, 49999]})
    assert cfg.port_range == [40000, 49999]
    assert validate_backend_config(registries.spawners, "local", {}).port_range is None
