"""Facts about processes from /proc: alive, zombie, start time (to tell a recycled pid from ours)."""

from __future__ import annotations

import os
import signal


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces/parentheses: split after the last ')'
    rest = data[data.rfind(")") + 2 :].split()
    return rest  # rest[0] is state (field 3), rest[19] is starttime (field 22)


def start_time(pid: int) -> int | None:
    """Process start time in clock ticks since boot, or ``None`` if there is no such process."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_ours_and_alive(pid: int, started: int | None) -> bool:
    """True when ``pid`` runs and is the very process we started (same start time), not a zombie."""
    if pid <= 0:
        return False
    st = state(pid)
    if st is None or st in ("Z", "X"):
        return False
    return started is None or start_time(pid) == started


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in a process group."""
    if pgid <= 1:
        return []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    out = []
    for name in entries:
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f and len(f) > 2 and f[2] == str(pgid) and f[0] not in ("Z", "X"):
            out.append(int(name))
    return out


def group_alive(pgid: int) -> bool:
    """Any (non-zombie) process left in the process group?"""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies; look for a live member
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for name in entries:
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f and len(f) > 2 and f[2] == str(pgid) and f[0] not in ("Z", "X"):
            return True
    return False


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the group; False when the group is gone."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def reap(pid: int) -> int | None:
    """Collect the exit status of a child of this process (None if not a child or still running)."""
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if wpid == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def with_environ_entry(entry: bytes) -> list[int]:
    """Live pids whose initial environment holds ``entry`` (e.g. ``b"KEY=value"``), from /proc/<pid>/environ.

    How a server is found when the hub died after starting it but before saving its pid: the marker was saved
    first and is inherited by the whole process tree."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if entry in env and state(int(name)) not in (None, "Z", "X"):
            found.append(int(name))
    return found
