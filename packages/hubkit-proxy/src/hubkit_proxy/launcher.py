"""Start, find, watch and stop an embedded proxy process that outlives the hub.

The child runs in its own session (no terminal signals from the hub's process group) and its pid is kept in a
file, so a restarted hub finds the running proxy and reuses it instead of starting a second one. Its exit is
observed through a pidfd (Linux) the moment it happens, whether or not it is this process's child.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import sys
import time


def read_pid(pid_file: str) -> int | None:
    try:
        with open(pid_file) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def launch(cmd: list[str], env: dict[str, str], pid_file: str, log_file: str) -> subprocess.Popen[bytes]:
    os.makedirs(os.path.dirname(os.path.abspath(pid_file)), exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    with open(pid_file, "w") as fh:
        fh.write(str(proc.pid))
    return proc


class Standby:
    """A warm standby (``--standby-fd``): started with the proxy's command, it imports and parses, then waits on a
    pipe. One byte makes it take over (bind and replay the journal); closing the pipe, or the hub's death,
    makes it exit, so it never outlives the hub that started it."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_file: str) -> None:
        read_end, self.go = os.pipe()
        try:
            with open(log_file, "ab") as log:
                self.proc = subprocess.Popen(
                    [*cmd, "--standby-fd", str(read_end)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # once it has taken over, it must outlive the hub like the proxy
                    pass_fds=[read_end],
                )
        except BaseException:
            os.close(self.go)
            raise
        finally:
            os.close(read_end)

    def release(self) -> None:
        """No longer needed: it reads EOF and exits (once its imports are done)."""
        os.close(self.go)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(0.5)

    def activate(self, pid_file: str) -> subprocess.Popen[bytes] | None:
        """Take over now; the pid file names it from here on. None if it already died."""
        try:
            os.write(self.go, b"1")
        except OSError:
            return None
        finally:
            os.close(self.go)
        with open(pid_file, "w") as fh:
            fh.write(str(self.proc.pid))
        return self.proc


def stop(pid_file: str, grace: float = 5.0) -> bool:
    """Stop the process named by ``pid_file`` (SIGTERM, then SIGKILL). True when one was running."""
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        with contextlib.suppress(OSError):
            os.unlink(pid_file)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        reap(pid)
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    reap(pid)
    with contextlib.suppress(OSError):
        os.unlink(pid_file)
    return True


async def wait_exit(pid: int, poll: float = 0.1) -> None:
    """Return when process ``pid`` has exited (a zombie counts as exited).

    Uses a pidfd, which becomes readable at exit, so there is no polling delay; where pidfds are not available
    (non-Linux, old kernels) it polls every ``poll`` seconds.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            raise
        while pid_alive(pid):  # noqa: ASYNC110 (no event to wait on without a pidfd)
            await asyncio.sleep(poll)
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def wait_ports(ports_file: str, proc: subprocess.Popen[bytes], seconds: float) -> dict[str, int | None]:
    """The ports ``proc`` bound, from the ports file it writes once listening (see ``--ports-file``)."""
    from .listen import read_ports_file

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        data = read_ports_file(ports_file)
        if data is not None and data.get("pid") == proc.pid:
            return {k: v for k, v in data.items() if k != "pid"}
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no ports file {ports_file} within {seconds}s")


def reap(pid: int) -> None:
    """Collect an exited child of ours (no-op for other processes)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> None:
    """``python -m hubkit_proxy.launcher stop <pid-file>``: stop an embedded proxy explicitly."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "stop":
        raise SystemExit("usage: python -m hubkit_proxy.launcher stop <pid-file>")
    print("stopped" if stop(args[1]) else "not running")


if __name__ == "__main__":
    main()
