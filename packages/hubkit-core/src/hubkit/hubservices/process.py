"""One managed service's OS process: start it (in its own session, as its account), stream its output into
the hub's log, stop its whole process group, and recognise it again by pid *and* start time, so a pid the
kernel gave to another program since is never signalled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hubkit.services")

OUTPUT_KEPT = 20  # lines of output remembered for the message when the process exits
LINE_MAX = 4096


def host_id() -> str:
    return socket.gethostname()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), or ``None`` when it is gone (or
    a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return None if fields[0] == b"Z" else int(fields[19])  # state is field 3, start time field 22
    except (IndexError, ValueError):
        return None


def same_process(pid: int, ticks: int | None) -> bool:
    return ticks is not None and start_ticks(pid) == ticks


def signal_group(pid: int, sig: int) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
        return True
    return False


def account(user: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Popen arguments and USER/HOME/SHELL for running as ``user`` (nothing when ``None``)."""
    if not user:
        return {}, {}
    pw = pwd.getpwnam(user)
    groups = os.getgrouplist(user, pw.pw_gid)
    kwargs: dict[str, Any] = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": groups}
    env = {"USER": user}
    if pw.pw_dir:
        env["HOME"] = pw.pw_dir
    if pw.pw_shell:
        env["SHELL"] = pw.pw_shell
    return kwargs, env


@dataclass
class Running:
    """A started service process and the task copying its output to the log."""

    name: str
    proc: asyncio.subprocess.Process
    ticks: int | None
    reader: asyncio.Task[None]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_KEPT))

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait(self) -> int:
        """Its exit status, once it exits; what it left running in its process group is then stopped too, so
        a service that keeps dying cannot pile up orphans."""
        code = await self.proc.wait()
        signal_group(self.pid, signal.SIGTERM)
        # the output pipe may be held open by a child the service left behind: drain briefly, then stop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.reader), 1.0)
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        return code

    async def stop(self, grace: float) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
        if self.proc.returncode is None:
            signal_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                log.warning("service %s did not stop within %.0fs: killing it", self.name, grace)
                signal_group(self.pid, signal.SIGKILL)
                await self.proc.wait()
        return await self.wait()


async def _copy_output(
    name: str, stream: asyncio.StreamReader, tail: deque[str], transport: asyncio.BaseTransport
) -> None:
    try:
        await _copy_lines(name, stream, tail)
    finally:
        transport.close()


async def _copy_lines(name: str, stream: asyncio.StreamReader, tail: deque[str]) -> None:
    out = logging.getLogger(f"hubkit.services.{name}")
    pending = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > LINE_MAX:
            lines.append(pending)
            pending = b""
        for raw in lines:
            line = raw[:LINE_MAX].decode("utf-8", "replace").rstrip("\r")
            tail.append(line)
            out.info("[%s] %s", name, line)
    if pending:
        line = pending[:LINE_MAX].decode("utf-8", "replace")
        tail.append(line)
        out.info("[%s] %s", name, line)


async def start(
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str | None,
    popen: Mapping[str, Any],
) -> Running:
    """Start the command in a new session (its own process group); raises ``OSError`` if it cannot.

    Output goes through a pipe of our own rather than asyncio's: asyncio's ``wait()`` also waits for its pipes
    to close, which a child the service started (and that outlived it) would hold open."""
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            cwd=cwd or None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            **popen,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    stream = asyncio.StreamReader(limit=2**20)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0)
    )
    tail: deque[str] = deque(maxlen=OUTPUT_KEPT)
    reader = asyncio.create_task(
        _copy_output(name, stream, tail, transport), name=f"hubkit-service-{name}-output"
    )
    return Running(name, proc, start_ticks(proc.pid), reader, tail)
