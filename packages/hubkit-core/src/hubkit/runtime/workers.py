"""``hubkit --workers N``: N replica processes of one hub on this machine, under a supervising parent.

The parent binds the hub's listening socket once and starts each worker as ``hubkit`` with the same arguments,
handing it the socket (pre-fork, as gunicorn does): every worker accepts on the one port, the kernel gives each
connection to a worker that is waiting, and the proxy's default route keeps naming a single address. A worker
killed mid-request loses only the connections it had accepted; those still queued are taken by the others.

The workers are replicas on PostgreSQL: they share the singleton duties and the spawns through leases
(:mod:`.leases`), so the parent knows nothing of the hub's work. It only starts worker 0 first (it creates the
schema of an empty database and launches the embedded proxy, which the others then reuse; only worker 0 keeps the
proxy's watchdog), restarts a worker that exits, and on SIGTERM or SIGINT forwards SIGTERM to all and waits.
SQLite allows one hub process, so ``--workers`` refuses it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config.models import Settings
from ..errors import ConfigError
from ..storage.engine import is_sqlite, normalize_url
from ..urls import normalize_base_url
from .ports import bind_port_zero, own_port_key

log = logging.getLogger("hubkit.workers")

LISTEN_FD_ENV = "HUBKIT_LISTEN_FD"  # a worker's inherited listening socket
WORKER_ENV = "HUBKIT_WORKER"  # a worker's index, 0 to N-1
SUPERVISOR_ENV = "HUBKIT_WORKERS_SUPERVISOR"  # the supervisor's pid: a worker whose parent is another stops
EMBEDDED_PROXIES = ("hubkit-proxy", "chp")
RESTART_PAUSE = 1.0  # seconds before a worker that exited is started again
QUICK_EXIT = 10.0  # a worker that exits this soon after its start, several times in a row, is broken
QUICK_EXITS_LIMIT = 5
STOP_GRACE = 30.0  # seconds the workers get to stop after SIGTERM before they are killed


def require_postgres(settings: Settings) -> None:
    url = normalize_url(settings.hub.db_url, settings.hub.data_dir)
    if is_sqlite(url):
        raise ConfigError(
            f"--workers starts several hub processes on one database, and SQLite ({url.database}) allows one; "
            'hub replicas need PostgreSQL: set [hub] db_url = "postgresql://..."',
            key="hub.db_url",
        )


def without_workers_flag(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


# ------------------------------------------------------------------------------------------------- in a worker


def worker_index() -> int | None:
    value = os.environ.get(WORKER_ENV, "")
    return int(value) if value.isdigit() else None


def supervisor_pid() -> int | None:
    value = os.environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


def inherited_socket(settings: Settings) -> tuple[Settings, socket.socket | None]:
    """In a worker: the parent's listening socket, and settings carrying its real port (port 0 resolved once, by
    the parent); elsewhere ``(settings, None)``. A worker other than worker 0 leaves the embedded proxy's
    watchdog to worker 0, so N workers never race to relaunch one proxy."""
    fd = os.environ.get(LISTEN_FD_ENV, "")
    if not fd.isdigit():
        return settings, None
    sock = socket.socket(fileno=int(fd))
    h = settings.hub
    settings = settings.model_copy(
        update={"hub": h.model_copy(update={own_port_key(settings): sock.getsockname()[1]})}
    )
    backend = settings.proxy.backend
    if (worker_index() or 0) > 0 and backend in EMBEDDED_PROXIES:
        backends = dict(settings.proxy.backends)
        backends[backend] = {**backends.get(backend, {}), "restart_on_exit": False}
        settings = settings.model_copy(
            update={"proxy": settings.proxy.model_copy(update={"backends": backends})}
        )
    return settings, sock


# ------------------------------------------------------------------------------------------------- the parent


def listen(settings: Settings) -> socket.socket:
    h = settings.hub
    key = own_port_key(settings)
    _, zero = bind_port_zero(settings)  # port 0: the last run's port if free (ports.py), else a new one
    if zero is not None:
        sock = zero
    else:
        host = (h.ip if key == "port" else h.hub_ip) or "0.0.0.0"
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, getattr(h, key)))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0


class Supervisor:
    def __init__(self, settings: Settings, argv: Sequence[str], count: int) -> None:
        self.settings = settings
        self.argv = without_workers_flag(argv)
        self.workers = [Worker(i) for i in range(count)]
        self.sock = listen(settings)
        self.stopping = False
        host, port = self.sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.health = f"http://{'127.0.0.1' if host == '0.0.0.0' else shown}:{port}"
        self.health += f"{normalize_base_url(settings.hub.base_url)}hub/health"

    def _start(self, w: Worker) -> None:
        env = dict(
            os.environ,
            **{
                LISTEN_FD_ENV: str(self.sock.fileno()),
                WORKER_ENV: str(w.index),
                SUPERVISOR_ENV: str(os.getpid()),
            },
        )
        w.proc = subprocess.Popen(
            [sys.executable, "-m", "hubkit.cli", *self.argv], env=env, pass_fds=(self.sock.fileno(),)
        )
        w.started = time.monotonic()
        log.info("worker %d started (pid %d)", w.index, w.proc.pid)

    def _wait_ready(self, w: Worker, limit: float = 120) -> bool:
        import httpx  # only the parent needs it (0.25 s to import: not on a worker's start)

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not self.stopping:
            assert w.proc is not None
            if w.proc.poll() is not None:
                return False
            try:
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        return False

    def _on_signal(self, sig: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        first = self.workers[0]
        self._start(first)
        if not self._wait_ready(first):  # a config or database problem: every worker would fail the same way
            return self._stop_all(1 if not self.stopping else 0)
        for w in self.workers[1:]:
            self._start(w)
        log.info("hubkit: %d workers serving %s", len(self.workers), self.health.rsplit("/hub/", 1)[0])
        while not self.stopping:
            time.sleep(0.2)
            for w in self.workers:
                if self.stopping or w.proc is None or w.proc.poll() is None:
                    continue
                code = w.proc.returncode
                quick = time.monotonic() - w.started < QUICK_EXIT
                w.quick_exits = w.quick_exits + 1 if quick else 0
                log.warning("worker %d (pid %d) exited with %s; restarting it", w.index, w.proc.pid, code)
                if w.quick_exits >= QUICK_EXITS_LIMIT:
                    log.error("worker %d keeps exiting at start; stopping every worker", w.index)
                    return self._stop_all(1)
                time.sleep(RESTART_PAUSE)
                self._start(w)
        return self._stop_all(0)

    def _stop_all(self, code: int) -> int:
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %g s; killing it", proc.pid, STOP_GRACE)
                proc.kill()
                proc.wait()
        self.sock.close()
        log.info("hubkit: every worker stopped")
        return code


def run_workers(settings: Settings, argv: Sequence[str], count: int) -> int:
    if count < 1:
        raise ConfigError("--workers needs a number of 1 or more")
    require_postgres(settings)
    return Supervisor(settings, argv, count).run()
