"""The ``stand-in`` spawner: stand-in user servers for tests, demos and benchmarks (no Jupyter).

Registered only when ``[spawner] backend`` names it (``stand-in``, or ``test``, its former name). It starts
tiny HTTP servers that answer the readiness check, so the whole spawn machinery runs without a notebook
server:

* ``inprocess`` (default): each server is an asyncio listener inside the hub process; thousands start in a
  second. A listener answers ``/.stand-in/identity`` and ``/.stand-in/stop``, and the ports a hub started are
  listed in a file in its data directory, so a second hub object on the same data directory (a restart in a test
  or benchmark) can poll, stop and sweep them without sharing any Python state with the first.
* ``process``: :mod:`hubkit.builtin.tiny_server` as a child process in its own session, surviving ``kill -9`` of
  the hub. The state saved *before* the fork names an instance id that the child carries on its command line,
  with the hub's label, so a hub killed between the fork and saving the pid still finds, stops or sweeps it.

The behaviour (``ok``, ``raise``, ``crash``, ``hang``, ``hang-http``) can be chosen per spawn through the user
option ``behaviour`` to exercise every failure path of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
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
from .standin_servers import (
    CONTROL,
    SERVER_MODULE,
    Listener,
    labelled_processes,
    proc_start_time,
    request,
)

Behaviour = Literal["ok", "raise", "crash", "hang", "hang-http"]
BEHAVIOURS = ("ok", "raise", "crash", "hang", "hang-http")


class StandInConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["inprocess", "process"] = Field(
        "inprocess", description="inprocess listeners or child processes."
    )
    start_delay: float = Field(
        0.0, ge=0, description="Seconds start() takes (to exercise queues and timeouts)."
    )
    behaviour: Behaviour = Field("ok", description="ok, raise, crash, hang (start never returns), hang-http.")
    kill_hub_after_fork: bool = Field(
        False,
        description="Restart-safety tests only: SIGKILL the hub right after a process-mode server is forked, "
        "before its pid is saved.",
    )


class StandInSpawner:
    def __init__(self, config: StandInConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        # labels this hub's servers; the data directory tells apart hubs that share a hub_id (parallel tests)
        self.label = f"{hub.hub_id}@{Path(hub.data_dir).resolve()}"
        self.starting_now = 0
        self.max_starting = 0
        self.started = 0
        self.dir = Path(hub.data_dir) / "stand-in"
        self._index = self.dir / f"{hub.hub_id}-listeners"
        self._listeners: dict[int, Listener] = {}  # port -> in-process server started by this instance
        self._silent: dict[int, socket.socket] = {}  # hang-http: bound sockets that never answer
        self._children: dict[int, asyncio.subprocess.Process] = {}

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

    # -------------------------------------------------------------------------------------------- start

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
                result = await self._start_inprocess(spec, behaviour)
            self.started += 1
            return result
        finally:
            self.starting_now -= 1

    async def _start_inprocess(self, spec: ServerSpec, behaviour: str) -> StartResult:
        if behaviour == "crash":
            raise SpawnFailed("the test server crashed at startup (exit code 3)", reason_code="exited")
        if behaviour == "hang-http":
            sock = socket.create_server(("127.0.0.1", 0))  # accepts into its backlog, never answers
            port = int(sock.getsockname()[1])
            self._silent[port] = sock
            state = {"mode": "inprocess", "port": port, "hang": True}
            return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)
        listener = Listener(spec.url_prefix, self.label)
        port = await listener.start()
        self._listeners[port] = listener
        self._remember(port, spec.full_name)
        state = {"mode": "inprocess", "port": port}
        return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    async def _start_process(self, spec: ServerSpec, ctx: SpawnContext, behaviour: str) -> StartResult:
        self.dir.mkdir(parents=True, exist_ok=True)
        instance = secrets.token_hex(8)
        # names may be 255 characters each: a readable head plus the instance keeps the file name short and unique
        safe = spec.full_name.replace("/", "-")[:40] or "server"
        log_path = self.dir / f"{safe}-{instance}.log"
        port_file = self.dir / f"{instance}.port"
        # identity first: a hub killed between the fork and saving the pid finds the child by this instance id
        state: JSONDict = {"mode": "process", "instance": instance, "log": str(log_path)}
        await ctx.save_state(state)
        env = {**spec.env, "HUBKIT_TEST_BEHAVIOUR": behaviour}  # its address: the port it writes to port_file
        env["PATH"] = os.environ.get("PATH", "")
        with open(log_path, "ab") as log:  # noqa: ASYNC230 (a local append-open)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                SERVER_MODULE,
                f"--hub={self.label}",
                f"--instance={instance}",
                f"--port-file={port_file}",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.config.kill_hub_after_fork:
            os.kill(os.getpid(), signal.SIGKILL)
        self._children[proc.pid] = proc
        state = {**state, "pid": proc.pid, "start_time": proc_start_time(proc.pid)}
        await ctx.save_state(state)
        port = await self._wait_port(proc, port_file)
        state = {**state, "port": port}
        await ctx.save_state(state)
        return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    async def _wait_port(self, proc: asyncio.subprocess.Process, port_file: Path) -> int:
        """The port the child bound (it writes it once listening); a child that exits first fails the spawn.
        The core bounds the whole wait with ``start_timeout``."""
        delay = 0.005
        while True:
            with contextlib.suppress(OSError, ValueError):
                port = int(port_file.read_text())  # noqa: ASYNC240
                port_file.unlink()  # noqa: ASYNC240
                return port
            if proc.returncode is not None:
                raise SpawnFailed(f"the test server exited with code {proc.returncode}", reason_code="exited")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -------------------------------------------------------------------------------------------- poll

    def _process_pid(self, state: JSONDict) -> int | None:
        """The live pid of a process-mode server: from its state, else found by its instance id."""
        pid = state.get("pid")
        if isinstance(pid, int):
            child = self._children.get(pid)
            if child is not None:
                return pid if child.returncode is None else None
            alive = proc_start_time(pid)
            return pid if alive is not None and alive == state.get("start_time") else None
        instance = state.get("instance")
        return labelled_processes(self.label).get(str(instance)) if instance else None

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        mode = state.get("mode")
        if mode == "inprocess":
            if state.get("hang"):
                return None
            port = int(state.get("port", 0))
            listener = self._listeners.get(port)
            if listener is not None:
                return None if listener.serving() else ExitStatus(reason="listener gone")
            return None if await self._probe(port) == spec.url_prefix else ExitStatus(reason="listener gone")
        if mode == "process":
            pid = state.get("pid")
            child = self._children.get(pid) if isinstance(pid, int) else None
            if child is not None and child.returncode is not None:
                return ExitStatus(code=child.returncode, reason=f"exit code {child.returncode}")
            if self._process_pid(state) is not None:
                return None
            return ExitStatus(reason="process gone" if isinstance(pid, int) else "never started")
        return ExitStatus(reason="no state")

    async def _probe(self, port: int) -> str | None:
        """The prefix an in-process server of this hub on ``port`` serves, or ``None``."""
        if not port:
            return None
        try:
            status, body = await request(port, "GET", CONTROL + "identity", self.label)
            identity = json.loads(body) if status == 200 else {}
        except (OSError, TimeoutError, ValueError):
            return None
        return str(identity["prefix"]) if identity.get("hub") == self.label else None

    # -------------------------------------------------------------------------------------------- stop

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        mode = state.get("mode")
        if mode == "inprocess":
            port = int(state.get("port", 0))
            sock = self._silent.pop(port, None)
            if sock is not None:
                sock.close()
            await self._stop_listener(port)
            return
        if mode == "process":
            await self._stop_process(state, now=now)

    async def _stop_listener(self, port: int) -> None:
        listener = self._listeners.pop(port, None)
        if listener is not None:
            listener.close()
        elif port and await self._probe(port) is not None:
            with contextlib.suppress(OSError, TimeoutError):
                await request(port, "POST", CONTROL + "stop", self.label)  # another hub object's listener
        self._forget(port)

    async def _stop_process(self, state: JSONDict, *, now: bool) -> None:
        pid = self._process_pid(state)
        if pid is None:
            if isinstance(state.get("pid"), int):
                self._children.pop(int(state["pid"]), None)
            return  # already gone (or the pid was reused: not ours)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if now else signal.SIGTERM)
        child = self._children.pop(pid, None)
        if child is not None:
            await child.wait()
            return
        for _ in range(100):
            if proc_start_time(pid) is None:
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

    # -------------------------------------------------------------------------------------------- orphans

    def _read_index(self) -> dict[int, str]:
        """``port -> server`` of the in-process servers this hub's objects started (one file per port)."""
        out: dict[int, str] = {}
        with contextlib.suppress(OSError):
            for entry in self._index.iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        out[int(entry.name)] = entry.read_text()
        return out

    def _remember(self, port: int, name: str) -> None:
        self._index.mkdir(parents=True, exist_ok=True)
        (self._index / str(port)).write_text(name)

    def _forget(self, port: int) -> None:
        with contextlib.suppress(OSError):
            (self._index / str(port)).unlink()

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        """Orphans are stand-in servers labelled with this hub that no known server owns: in-process
        listeners from this hub's index that still answer, and tiny server processes carrying its label."""
        ports = {int(k.state.get("port", 0)) for k in known if k.state.get("mode") == "inprocess"}
        instances = {str(k.state.get("instance")) for k in known if k.state.get("mode") == "process"}
        orphans: list[tuple[str, JSONDict]] = []
        for port, name in self._read_index().items():
            if port in ports:
                continue
            if await self._probe(port) is None:
                self._forget(port)  # gone already: nothing to report
                continue
            orphans.append((f"{port}", {"mode": "inprocess", "port": port, "server": name}))
        for instance, pid in sorted(labelled_processes(self.label).items()):
            if instance not in instances:
                orphans.append((f"pid {pid}", {"mode": "process", "instance": instance}))
        labels = tuple(label for label, _state in orphans)
        if not remove_orphans:
            return ReconcileReport(reported=labels)
        for _label, state in orphans:
            if state["mode"] == "inprocess":
                await self._stop_listener(int(state["port"]))
            else:
                await self._stop_process(state, now=False)
        return ReconcileReport(removed=labels)

    def serving(self, port: int) -> bool:
        """Tests: whether the in-process server this instance started on ``port`` still listens."""
        listener = self._listeners.get(port)
        return listener is not None and listener.serving()

    def kill(self, port: int) -> None:
        """Tests: make an in-process server of this instance die, as a crashed server would."""
        listener = self._listeners.pop(port, None)
        if listener is not None:
            listener.close()

    def close_all(self) -> None:
        """Tests and benchmarks: close every in-process server of this instance (they otherwise live as long
        as the event loop)."""
        for port in list(self._listeners):
            self.kill(port)
            self._forget(port)
        for sock in self._silent.values():
            sock.close()
        self._silent.clear()


@hookimpl
def hubkit_register_spawners(registry: BackendRegistry[Any]) -> None:
    description = "stand-in servers for tests and demos (in-process listeners or tiny processes), no Jupyter"
    registry.add("stand-in", StandInSpawner, config=StandInConfig, description=description)
    registry.add("test", StandInSpawner, config=StandInConfig, description=description, alias_of="stand-in")
