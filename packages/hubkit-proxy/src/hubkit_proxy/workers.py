"""``--workers N``: N data-plane processes on one SO_REUSEPORT port, driven by one master that owns the table.

The master serves the route API, keeps the journal (the only writer, so it stays consistent) and the peer
sync, and serves no traffic itself. Each worker gets the settings and a snapshot of the table over a Unix
socketpair, then every change as it happens (JSON lines); it binds the public port with SO_REUSEPORT, so the
kernel spreads connections over the workers. Once a second each worker reports the routes it saw traffic on
and its counters; the master folds them into ``last_activity`` and ``/metrics``. A worker that dies is
restarted with a fresh snapshot; workers exit when their master does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .launcher import reap, wait_exit
from .routing import RouteError, parse_iso

if TYPE_CHECKING:
    from .server import Proxy

log = logging.getLogger("hubkit_proxy.workers")
REPORT_EVERY = 1.0  # seconds between a worker's activity/metrics reports


class LineProtocol(asyncio.Protocol):
    """JSON lines in both directions over one stream; ``on_message`` per decoded line, ``on_lost`` at EOF."""

    def __init__(self, on_message: Callable[[dict[str, Any]], None], on_lost: Callable[[], None]) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line:
                self.on_message(json.loads(line))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


async def _link(
    sock: socket.socket, on_message: Callable[[dict[str, Any]], None], on_lost: Callable[[], None]
) -> LineProtocol:
    loop = asyncio.get_running_loop()
    _, proto = await loop.connect_accepted_socket(lambda: LineProtocol(on_message, on_lost), sock=sock)
    return proto


# -- master side ------------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.link: LineProtocol | None = None
        self.up = asyncio.Event()
        self.metrics: dict[str, Any] = {}


class WorkerGroup:
    def __init__(self, proxy: Proxy, port: int) -> None:
        self.proxy = proxy
        self.port = port
        self.workers = [Worker(i) for i in range(proxy.settings.workers)]
        self.watchers: list[asyncio.Task[None]] = []
        self.closing = False
        proxy.routes.listeners.append(self.broadcast)

    async def start(self, seconds: float = 30.0) -> None:
        for w in self.workers:
            await self._spawn(w)
        await asyncio.wait_for(asyncio.gather(*(w.up.wait() for w in self.workers)), seconds)
        loop = asyncio.get_running_loop()
        self.watchers = [loop.create_task(self._watch(w)) for w in self.workers]

    async def _spawn(self, w: Worker) -> None:
        ours, theirs = socket.socketpair()
        settings = dataclasses.asdict(self.proxy.settings)
        settings.update(port=self.port, workers=1, state_file=None, peers=[], pid_file=None, ports_file=None)
        settings.update(default_targets=[])  # the table arrives from here
        w.proc = _start_worker(theirs, self.proxy.settings.no_uvloop)
        w.up.clear()
        w.link = await _link(ours, functools.partial(self._received, w), lambda: None)
        w.link.send({"settings": settings, "snapshot": self.proxy.routes.snapshot()})

    async def _watch(self, w: Worker) -> None:
        """Restart a worker the moment it exits (the master's own exit takes all workers with it)."""
        while not self.closing:
            assert w.proc is not None
            await wait_exit(w.proc.pid)
            reap(w.proc.pid)
            if self.closing:
                return
            log.warning(
                "worker %d (pid %d) exited with %s; restarting it", w.index, w.proc.pid, w.proc.poll()
            )
            if w.link is not None and w.link.transport is not None:
                w.link.transport.close()
            await asyncio.sleep(0.1)  # a worker failing at start must not spin
            await self._spawn(w)

    def _received(self, w: Worker, m: dict[str, Any]) -> None:
        if m.get("up"):
            w.up.set()
        activity = m.get("act")
        if activity:
            routes = self.proxy.routes.routes
            for path, ts in activity.items():
                route = routes.get(path)
                if route is not None and ts > route.last_activity:
                    route.last_activity = ts
        if "m" in m:
            w.metrics = m["m"]

    def broadcast(self, op: str, path: str, data: dict[str, Any] | None) -> None:
        """Table listener: every change made through the API reaches every worker, in order."""
        message = {"a": path, "d": data} if op == "add" else {"r": path}
        for w in self.workers:
            if w.link is not None:
                w.link.send(message)

    def worker_metrics(self) -> list[dict[str, Any]]:
        return [w.metrics for w in self.workers if w.metrics]

    async def stop(self, grace: float = 10.0) -> None:
        self.closing = True
        for task in self.watchers:
            task.cancel()
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.terminate()
        deadline = time.monotonic() + grace
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                await asyncio.wait_for(wait_exit(w.proc.pid), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                w.proc.kill()
            w.proc.wait(5)


def _start_worker(sock: socket.socket, no_uvloop: bool) -> subprocess.Popen[bytes]:
    """Start a worker process holding its end of the link (closed here once the child has it)."""
    cmd = [sys.executable, "-m", "hubkit_proxy.workers", str(sock.fileno())]
    if no_uvloop:
        cmd.append("--no-uvloop")
    try:
        return subprocess.Popen(cmd, pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL)
    finally:
        sock.close()


# -- worker side ------------------------------------------------------------------------------------------------
async def _worker(fd: int) -> None:
    from .server import Proxy
    from .settings import Settings

    loop = asyncio.get_running_loop()
    first: asyncio.Future[dict[str, Any]] = loop.create_future()
    early: list[dict[str, Any]] = []  # changes that arrive before the table is built
    proxy: Proxy | None = None

    def apply(m: dict[str, Any]) -> None:
        assert proxy is not None
        try:
            if "r" in m:
                proxy.routes.remove(m["r"], notify=False)
            else:
                _add(proxy, m["a"], m["d"])
        except (RouteError, ValueError, KeyError) as exc:
            log.warning("worker could not apply %s: %s", m, exc)

    def received(m: dict[str, Any]) -> None:
        if not first.done():
            first.set_result(m)
        elif proxy is None:
            early.append(m)
        else:
            apply(m)

    def lost() -> None:
        if proxy is not None:
            proxy.exit.set()  # the master is gone: stop taking connections, finish, exit
        elif not first.done():
            first.set_exception(ConnectionError("master closed the link"))

    link = await _link(socket.socket(fileno=fd), received, lost)
    hello = await first
    settings = Settings(**hello["settings"])
    settings.custom_headers = [(k, v) for k, v in settings.custom_headers]
    logging.getLogger().setLevel({"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper()))
    worker = Proxy(settings, role="worker")
    for path, data in hello["snapshot"].items():
        _add(worker, path, data)
    proxy = worker
    for m in early:
        apply(m)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.exit.set)
    await worker.start()
    link.send({"up": True, "pid": os.getpid()})
    reporter = loop.create_task(_report(worker, link))
    try:
        await worker.exit.wait()
    finally:
        reporter.cancel()
        await worker.drain(grace=5.0)
        await worker.stop()


def _add(proxy: Proxy, path: str, data: dict[str, Any]) -> None:
    seen = data.get("last_activity")
    proxy.routes.add(path, data, parse_iso(seen) if seen else None, notify=False)


async def _report(proxy: Proxy, link: LineProtocol) -> None:
    since = time.time()
    while True:
        await asyncio.sleep(REPORT_EVERY)
        now = time.time()
        active = {r.path: r.last_activity for r in proxy.routes if r.last_activity > since}
        since = now
        link.send({"act": active, "m": proxy.metrics.snapshot()})


def main() -> None:
    """``python -m hubkit_proxy.workers FD [--no-uvloop]``: a worker process, started by its master."""
    from .cli import loop_factory

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    fd = int(sys.argv[1])
    with asyncio.Runner(loop_factory=loop_factory("--no-uvloop" in sys.argv[2:])) as runner:
        runner.run(_worker(fd))


if __name__ == "__main__":
    main()
