"""The ``local`` spawner backend: one process group per server, in its own session, outliving the hub.

Everything needed to find a server again (pid, process group, kernel start time, port, log path, cgroups)
is in the per-server state the core persists, so a restarted hub re-adopts servers from state alone.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hubkit.errors import ConfigError, SpawnFailed
from hubkit.interfaces import (
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
from hubkit.plugins.registry import HubInfo

from . import listeners, logs, procinfo
from .accounts import Account, own_account, user_account
from .config import LocalSpawnerConfig
from .environment import build_cmd, build_env
from .index import ProcessIndex
from .limits import LimitPlan, cgroup_name, plan_limits, remove_cgroups
from .ports import PortRange, free_port
from .shared import link_shared_data

STOP_POLL = 0.05
MAX_PORT_TRIES = 5  # starts on a fresh port after another program took the chosen one
INSTANCE_VAR = "HUBKIT_SERVER_INSTANCE"  # marks every process of a server, saved before it is started


def _prepare_home(path: str, account: Account, create: bool) -> None:
    if os.path.isdir(path):
        return
    if not create:
        raise SpawnFailed(f"home directory {path!r} does not exist", reason_code="no-home")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if account.switch:
        os.chown(path, account.uid, account.gid)


def _last_words(state: JSONDict, lines: int = 3, limit: int = 400) -> str:
    """The end of the server's log for an exit reason, so the failure message says *why* it died."""
    path = state.get("log_path")
    if not isinstance(path, str):
        return ""
    text = " | ".join(line.strip() for line in logs.tail(path, lines) if line.strip())
    if not text:
        return ""
    return ": " + (text if len(text) <= limit else "…" + text[-limit:])


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _child_setup(plan: LimitPlan, account: Account, umask: int) -> None:
    """Between fork and exec: join cgroups and set rlimits (as root), then drop to the user's account."""
    plan.preexec()
    if account.switch:
        os.setgroups(list(account.groups) or [account.gid])
        os.setgid(account.gid)
        os.setuid(account.uid)
        os.umask(umask)


class LocalSpawner:
    """See the module docstring. One instance per hub; per-server facts live only in ``state``."""

    def __init__(self, config: LocalSpawnerConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        self.index = ProcessIndex(
            os.path.join(os.path.abspath(hub.data_dir), "local-spawner", f"{hub.hub_id}.json")
        )
        # Popen objects of servers started by *this* hub process: lets us reap them (no zombies).
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._exited: dict[int, int] = {}  # exit codes we reaped, so a later poll can still report them
        self._reserved: set[int] = set()  # ports chosen by starts still in progress
        rng = config.port_range
        self.port_range = PortRange(rng[0], rng[1]) if rng else None

    @property
    def as_user(self) -> bool:
        return self.config.run_as_user

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self.config.run_as_user and os.geteuid() != 0:
            raise ConfigError(
                "run_as_user = true needs the hub to run as root (it switches to each user's OS account)",
                key="spawner.local.run_as_user",
            )

    async def shutdown(self) -> None:
        # User servers outlive the hub on purpose; only forget our handles.
        self._children.clear()

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return None

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        return {}

    # -- start ------------------------------------------------------------------------------------------------

    def _account(self, spec: ServerSpec) -> tuple[Account, str]:
        account = user_account(spec.user.name) if self.as_user else own_account()
        home = account.home
        if self.config.home_dir:
            home = os.path.abspath(
                os.path.expanduser(self.config.home_dir.replace("{username}", spec.user.name))
            )
        return account, home

    def _ports_in_use(self) -> set[int]:
        """Ports of this hub's live servers and of starts in flight (which may not listen yet)."""
        used = set(self._reserved)
        for st in self.index.load().values():
            port, pid = st.get("port"), st.get("pid")
            alive = isinstance(pid, int) and procinfo.is_ours_and_alive(pid, st.get("start_time"))
            if isinstance(port, int) and alive:
                used.add(port)
        return used

    def _choose_port(self, tried: list[int]) -> int:
        if self.port_range is None:
            return free_port()
        port = self.port_range.pick(self._ports_in_use() | set(tried))
        if port is None:
            raise SpawnFailed(
                f"no free port in [spawner.local] port_range {self.port_range}: all {len(self.port_range)} "
                "are taken by this hub's servers or by other programs",
                reason_code="no-free-port",
            )
        return port

    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        account, home = self._account(spec)
        _prepare_home(home, account, self.config.create_home)
        plan = plan_limits(
            cgroup_name(self.hub.hub_id, spec.user.name, spec.server_name),
            self.config.mem_limit_bytes,
            self.config.cpu_limit,
        )
        if plan.unsupported:
            if self.config.limits_required:
                remove_cgroups(plan.cgroup_dirs)
                raise SpawnFailed("; ".join(plan.unsupported), reason_code="limits-unsupported")
            for msg in plan.unsupported:
                await ctx.emit(
                    ProgressEvent(Phase.STARTING, f"warning: {msg}", detail={"limits": "unsupported"})
                )
        if self.config.shared_data_dir:
            for msg in link_shared_data(
                self.config.shared_data_dir, home, self.config.shared_data_link, account
            ):
                await ctx.emit(ProgressEvent(Phase.STARTING, f"shared data: {msg}"))
        tried: list[int] = []
        while True:
            port = self._choose_port(tried)
            self._reserved.add(port)  # no await between choosing and reserving: concurrent starts differ
            try:
                proc, result = await self._launch(spec, ctx, account, home, plan, port)
                if self.port_range is None:
                    return result
                bind = await listeners.wait_bound(
                    proc, port, str(result.state["log_path"]), self.config.port_bind_wait_seconds
                )
            finally:
                self._reserved.discard(port)
            if bind is not listeners.Bind.TAKEN:
                return result
            tried.append(port)
            await self.stop(spec, dict(result.state, cgroups=[]), now=True)  # the cgroups are reused
            if len(tried) >= MAX_PORT_TRIES:
                remove_cgroups(plan.cgroup_dirs)
                raise SpawnFailed(
                    f"ports {', '.join(map(str, tried))} of port_range {self.port_range} were taken by other "
                    "programs while the server started",
                    reason_code="port-collision",
                )
            await ctx.emit(
                ProgressEvent(
                    Phase.STARTING,
                    f"port {port} was taken by another program while the server started; trying another",
                    detail={"port": port},
                )
            )

    async def _launch(
        self, spec: ServerSpec, ctx: SpawnContext, account: Account, home: str, plan: LimitPlan, port: int
    ) -> tuple[subprocess.Popen[bytes], StartResult]:
        runs_as_root = (account.uid if account.switch else os.geteuid()) == 0
        env = build_env(spec, account, home, port, self.config.env_keep, os.environ)
        try:
            cmd = build_cmd(
                spec.cmd or self.config.cmd,
                spec.args,
                env,
                as_root=runs_as_root,
                allow_root=self.config.allow_root_flag,
            )
        except SpawnFailed:
            remove_cgroups(plan.cgroup_dirs)
            raise
        bindir = os.path.dirname(cmd[0])
        if bindir not in env["PATH"].split(os.pathsep):
            env["PATH"] = bindir + os.pathsep + env["PATH"]
        if self.config.mem_limit_bytes is not None:
            env.setdefault("MEM_LIMIT", str(self.config.mem_limit_bytes))
        if self.config.cpu_limit is not None:
            env.setdefault("CPU_LIMIT", str(self.config.cpu_limit))

        log_file = logs.log_path(self.hub.data_dir, spec.user.name, spec.server_name)
        instance = secrets.token_hex(8)
        env[INSTANCE_VAR] = instance
        state: JSONDict = {
            "instance": instance,
            "pid": None,
            "pgid": None,
            "port": port,
            "host": "127.0.0.1",
            "log_path": log_file,
            "uid": account.uid,
            "cgroups": plan.cgroup_dirs,
            "limits": plan.applied,
            "started_at": time.time(),
        }
        # Persist *before* the process exists, so a hub killed right now (even between the fork and saving the
        # pid) can still find the process by its instance marker, and its cgroups and log.
        self.index.put(spec.full_name, state)
        await ctx.save_state(dict(state))
        fd = logs.open_log(log_file, cmd)
        try:
            # fork+exec takes milliseconds; doing it inline lets the pid be saved before anything else runs
            proc = subprocess.Popen(  # noqa: ASYNC220
                cmd,
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=lambda: _child_setup(plan, account, self.config.umask),
            )
        except OSError as e:
            remove_cgroups(plan.cgroup_dirs)
            who = f" as OS user {account.name!r}" if account.switch else ""
            raise SpawnFailed(f"could not start {cmd[0]}{who}: {e}", reason_code="exec-failed") from e
        except subprocess.SubprocessError as e:
            remove_cgroups(plan.cgroup_dirs)
            raise SpawnFailed(f"could not prepare the server process: {e}", reason_code="exec-failed") from e
        finally:
            os.close(fd)
        self._children[proc.pid] = proc
        self._exited.pop(proc.pid, None)
        state.update(pid=proc.pid, pgid=proc.pid, start_time=procinfo.start_time(proc.pid))
        self.index.put(spec.full_name, state)
        await ctx.save_state(dict(state))
        return proc, StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    # -- poll / stop ------------------------------------------------------------------------------------------

    def _exit_code(self, pid: int) -> int | None:
        if pid in self._exited:
            return self._exited[pid]
        proc = self._children.get(pid)
        code = proc.poll() if proc is not None else procinfo.reap(pid)
        if code is not None:
            if len(self._exited) > 1000:
                self._exited.clear()
            self._exited[pid] = code
        return code

    def _found(self, state: JSONDict) -> JSONDict:
        """``state`` with the pid filled in from the instance marker when the hub died before saving it."""
        instance = state.get("instance")
        if isinstance(state.get("pid"), int) or not isinstance(instance, str):
            return state
        pids = procinfo.with_environ_entry(f"{INSTANCE_VAR}={instance}".encode())
        leaders = [p for p in pids if _pgid(p) == p]  # the server itself leads its own session and group
        if not leaders:
            return state
        pid = leaders[0]
        return {**state, "pid": pid, "pgid": pid, "start_time": procinfo.start_time(pid)}

    def _status(self, state: JSONDict) -> ExitStatus | None:
        state = self._found(state)
        pid = state.get("pid")
        if not isinstance(pid, int):
            return ExitStatus(reason="the server process was never started", reason_code="not-started")
        code = self._exit_code(pid)
        if code is None and procinfo.is_ours_and_alive(pid, state.get("start_time")):
            return None
        self._children.pop(pid, None)
        last = _last_words(state)
        if code is None and procinfo.state(pid) not in (None, "Z", "X"):
            reason = f"process {pid} is gone (its pid now belongs to another process)"
            return ExitStatus(reason=reason, reason_code="exited")
        if code is None:
            return ExitStatus(reason=f"process {pid} is gone{last}", reason_code="exited")
        if code < 0:
            return ExitStatus(code=code, reason=f"killed by signal {-code}{last}", reason_code="killed")
        return ExitStatus(code=code, reason=f"exited with code {code}{last}", reason_code="exited")

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        return self._status(state)

    def _group_to_signal(self, state: JSONDict) -> int | None:
        pgid = state.get("pgid")
        pid = state.get("pid")
        if not isinstance(pgid, int) or not isinstance(pid, int):
            return None
        leader_state = procinfo.state(pid)
        if leader_state not in (None, "Z", "X") and procinfo.start_time(pid) != state.get("start_time"):
            return None  # the pid (and with it the group id) was recycled: not ours to signal
        return pgid if procinfo.group_alive(pgid) else None

    async def _wait_gone(self, pgid: int, pid: int, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._exit_code(pid)  # reap our child so it does not linger as a zombie
            if not procinfo.group_alive(pgid):
                return True
            await asyncio.sleep(STOP_POLL)
        return not procinfo.group_alive(pgid)

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        state = self._found(state)
        pgid = self._group_to_signal(state)
        pid = state.get("pid")
        if pgid is not None and isinstance(pid, int):
            if not now and procinfo.signal_group(pgid, signal.SIGTERM):
                await self._wait_gone(pgid, pid, self.config.stop_grace_seconds)
            if procinfo.group_alive(pgid):
                procinfo.signal_group(pgid, signal.SIGKILL)
                await self._wait_gone(pgid, pid, 5)
        if isinstance(pid, int):
            self._exit_code(pid)
            self._children.pop(pid, None)
        remove_cgroups(list(state.get("cgroups") or []))
        self.index.remove(spec.full_name)

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        path = state.get("log_path") or logs.log_path(self.hub.data_dir, spec.user.name, spec.server_name)
        return await asyncio.to_thread(logs.tail, str(path), lines)

    # -- reconcile --------------------------------------------------------------------------------------------

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        adopted: list[str] = []
        missing: list[str] = []
        removed: list[str] = []
        reported: list[str] = []
        known_names = set()
        for k in known:
            known_names.add(k.spec.full_name)
            (adopted if self._status(k.state) is None else missing).append(k.spec.full_name)
        for name, saved in self.index.load().items():
            if name in known_names:
                continue
            st = self._found(saved)
            if self._status(st) is not None:
                self.index.remove(name)  # dead and unknown: just forget it
                continue
            label = f"{name} (pid {st.get('pid')})"
            if remove_orphans:
                user, _, server = name.partition("/")
                orphan = ServerSpec(
                    user=UserInfo(user), server_name=server, server_id=0, url_prefix="", hub_api_url=""
                )
                await self.stop(orphan, st)
                removed.append(label)
            else:
                reported.append(label)
        return ReconcileReport(tuple(adopted), tuple(removed), tuple(reported), tuple(missing))
