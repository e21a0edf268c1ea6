"""Who listens on a TCP port, from /proc: tells "our server bound its port" from "another program took it".

A port that passed the bind test can still be taken by another program before the server binds it. The
server then exits ("address already in use") or, with port retries on, binds elsewhere; either way it must
be started again on another port, which only the spawner (that chose the port) can do.
"""

from __future__ import annotations

import asyncio
import enum
import os
import subprocess
import time

from . import logs, procinfo

TCP_LISTEN = "0A"
POLL_SECONDS = 0.05
IN_USE_WORDS = ("already in use", "address in use", "eaddrinuse", "errno 98")


class Bind(enum.Enum):
    BOUND = "bound"  # a process of the server's group listens on the port
    TAKEN = "taken"  # another program listens on it (or the server died saying the address is in use)
    EXITED = "exited"  # the server exited for some other reason (the core's poll reports it)
    UNKNOWN = "unknown"  # nobody listened before the deadline (readiness decides)


def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on ``port`` on any local address (IPv4 and IPv6)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != TCP_LISTEN:
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(parts[9]))
    return found


def socket_inodes(pids: list[int]) -> set[int]:
    out: set[int] = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    return out


def _said_in_use(log_path: str) -> bool:
    text = " ".join(logs.tail(log_path, 20)).lower()
    return any(w in text for w in IN_USE_WORDS)


def check(proc: subprocess.Popen[bytes], port: int, log_path: str) -> Bind | None:
    """One look: ``None`` while the server neither listens nor has exited and nobody else holds the port."""
    inodes = listening_inodes(port)
    if inodes:
        ours = socket_inodes(procinfo.group_members(proc.pid))
        return Bind.BOUND if inodes & ours else Bind.TAKEN
    if proc.poll() is not None:
        return Bind.TAKEN if _said_in_use(log_path) else Bind.EXITED
    return None


async def wait_bound(proc: subprocess.Popen[bytes], port: int, log_path: str, wait_seconds: float) -> Bind:
    deadline = time.monotonic() + wait_seconds
    while True:
        seen = check(proc, port, log_path)
        if seen is not None:
            return seen
        if time.monotonic() >= deadline:
            return Bind.UNKNOWN
        await asyncio.sleep(POLL_SECONDS)
