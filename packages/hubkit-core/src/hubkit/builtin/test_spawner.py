"""The ``test`` spawner: fast servers for tests, demos and benchmarks.

``inprocess`` mode (default) serves each user server from an asyncio listener inside the hub process:
thousands start in a second. Listeners live in a module-level table, so a second :class:`hubkit.runtime.hub.Hub`
in the same process (a restart in a test or benchmark) can re-adopt them. ``process`` mode runs
:mod:`hubkit.builtin.tiny_server` as a child process in its own session, so it survives ``kill -9`` of the hub.
The behaviour (``ok``, ``raise``, ``crash``, ``hang``, ``hang-http``) can be chosen per spawn through the user
option ``behaviour`` to exercise every failure path of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidOptions, SpawnFailed
from ..interfaces import (
    Endpoint,
    ExitStatus,
    JSONDict,
    KnownServer,
    OptionsForm,
    Phase,
    ProgressEvent,
    ReconcileReport,
    ServerSpec,
    SpawnContext,
    StartResult,
    UserInfo,
)
from ..plugins import hookimpl
from ..plugins.registry import BackendRegistry, HubInfo
from ..spawn.env import env_with_url

Behaviour = Literal["ok", "raise", "crash", "hang", "hang-http"]
BEHAVIOURS = ("ok", "raise", "crash", "hang", "hang-http")


class TestSpawnerConfig(BaseModel):
    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid")

    mode: Literal["inprocess", "process"] = Field(
        "inprocess", description="inprocess listeners or child processes."
    )
    start_delay: float = Field(
        0.0, ge=0, description="Seconds start() takes (to exercise queues and timeouts)."
    )
    behaviour: Behaviour = Field("ok", description="ok, raise, crash, hang (start never returns), hang-http.")


class _Listener:
    """One in-process user server."""

    def __init__(self, server: asyncio.Server, prefix: str, hub_id: str) -> None:
        self.server = server
        self.prefix = prefix
        self.hub_id = hub_id


_LISTENERS: dict[int, _Listener] = {}  # port -> listener, shared by every TestSpawner in the process


async def _serve_http(prefix: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode("latin-1") if request.count(b" ") >= 2 else "/"
        ok = path.startswith(prefix)
        body = b'{"version": "test"}' if ok else b"not found"
        status = b"200 OK" if ok else b"404 Not Found"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a reused pid from ours. ``None`` when gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


class TestSpawner:
    __test__ = False  # not a pytest test class

    def __init__(self, config: TestSpawnerConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        self.starting_now = 0
        self.max_starting = 0
        self.started = 0
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self.log_dir = Path(hub.data_dir) / "test-spawner-logs"

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None  # user servers outlive the hub

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return None

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        behaviour = form.get("behaviour", "ok")
        if isinstance(behaviour, list):
            behaviour = behaviour[0] if behaviour else "ok"
        if behaviour not in BEHAVIOURS:
            raise InvalidOptions(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
        return {"behaviour": behaviour}

    def _behaviour(self, spec: ServerSpec) -> str:
        return str(spec.user_options.get("behaviour", self.config.behaviour))

    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        self.starting_now += 1
        self.max_starting = max(self.max_starting, self.starting_now)
        try:
            behaviour = self._behaviour(spec)
            if self.config.start_delay:
                await asyncio.sleep(self.config.start_delay)
            if behaviour == "raise":
                raise SpawnFailed("the test spawner was told to fail", reason_code="test-failure")
            if behaviour == "hang":
                await ctx.save_state({"mode": "hang"})
                await asyncio.Event().wait()
            await ctx.emit(ProgressEvent(Phase.STARTING, "test spawner: starting", progress=30))
            if self.config.mode == "process":
                result = await self._start_process(spec, ctx, behaviour)
            else:
                result = await self._start_inprocess(spec, ctx, behaviour)
            self.started += 1
            return result
        finally:
            self.starting_now -= 1

    async def _start_inprocess(self, spec: ServerSpec, ctx: SpawnContext, behaviour: str) -> StartResult:
        if behaviour == "crash":
            raise SpawnFailed("the test server crashed at startup (exit code 3)", reason_code="exited")
        if behaviour == "hang-http":
            # an address nothing answers on
            port = _free_port()
            state = {"mode": "inprocess", "port": port, "hang": True}
            await ctx.save_state(state)
            return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)
        prefix = spec.url_prefix
        server = await asyncio.start_server(lambda r, w: _serve_http(prefix, r, w), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        _LISTENERS[port] = _Listener(server, prefix, spec.hub_id)
        state = {"mode": "inprocess", "port": port}
        return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    async def _start_process(self, spec: ServerSpec, ctx: SpawnContext, behaviour: str) -> StartResult:
        port = _free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        safe = spec.full_name.replace("/", "-") or "server"
        log_path = self.log_dir / f"{safe}.log"
        # state first: a hub killed right after the fork still knows the port and log
        await ctx.save_state({"mode": "process", "port": port, "log": str(log_path)})
        env = {**env_with_url(spec, "127.0.0.1", port), "HUBKIT_TEST_BEHAVIOUR": behaviour}
        env["PATH"] = os.environ.get("PATH", "")
        with open(log_path, "ab") as log:  # noqa: ASYNC230 (a local append-open)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hubkit.builtin.tiny_server",
                f"--hub-id={spec.hub_id}",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        state = {
            "mode": "process",
            "port": port,
            "log": str(log_path),
            "pid": proc.pid,
            "start_time": _proc_start_time(proc.pid),
        }
        await ctx.save_state(state)
        return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        mode = state.get("mode")
        if mode == "inprocess":
            if state.get("hang"):
                return None
            listener = _LISTENERS.get(int(state.get("port", 0)))
            return (
                None
                if listener is not None and listener.server.is_serving()
                else ExitStatus(reason="listener gone")
            )
        if mode == "process":
            pid = state.get("pid")
            if not isinstance(pid, int):
                return ExitStatus(reason="never started")
            child = self._children.get(pid)
            if child is not None:
                if child.returncode is None:
                    return None
                return ExitStatus(code=child.returncode, reason=f"exit code {child.returncode}")
            alive = _proc_start_time(pid)
            if alive is not None and alive == state.get("start_time"):
                return None
            return ExitStatus(reason="process gone")
        return ExitStatus(reason="no state")

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        mode = state.get("mode")
        if mode == "inprocess":
            listener = _LISTENERS.pop(int(state.get("port", 0)), None)
            if listener is not None:
                listener.server.close()
            return
        pid = state.get("pid")
        if mode != "process" or not isinstance(pid, int):
            return
        if _proc_start_time(pid) != state.get("start_time"):
            self._children.pop(pid, None)
            return  # already gone (or the pid was reused: not ours)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if now else signal.SIGTERM)
        child = self._children.pop(pid, None)
        if child is not None:
            await child.wait()
            return
        for _ in range(100):
            if _proc_start_time(pid) is None:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        path = state.get("log")
        if not path:
            return []
        try:
            return Path(str(path)).read_text(errors="replace").splitlines()[-lines:]  # noqa: ASYNC240
        except OSError:
            return []

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        ports = {int(k.state.get("port", 0)) for k in known if k.state.get("mode") == "inprocess"}
        orphans = [p for p, lst in _LISTENERS.items() if lst.hub_id == self.hub.hub_id and p not in ports]
        if remove_orphans:
            for p in orphans:
                _LISTENERS.pop(p).server.close()
            return ReconcileReport(removed=tuple(str(p) for p in orphans))
        return ReconcileReport(reported=tuple(str(p) for p in orphans))


def close_all_listeners() -> None:
    """Tests: close every in-process server (they otherwise live as long as the event loop)."""
    for port in list(_LISTENERS):
        _LISTENERS.pop(port).server.close()


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    registry.add(
        "test",
        TestSpawner,
        config=TestSpawnerConfig,
        description="fast test servers (in-process or tiny processes)",
    )
