"""One proxy process: listeners, the route table and its persistence, timeouts, metrics.

Roles: ``single`` (the default) does everything; with ``--workers N`` a ``master`` serves the API and keeps
the journal while N ``worker`` processes carry the traffic (see ``workers.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
import uuid
from typing import Any

from .api import RouteApi
from .apiserver import ApiProtocol
from .errors import ErrorPages
from .fetch import fetch
from .frontend import ClientProtocol
from .health import Health
from .journal import Journal
from .listen import bound_port, create_listener, reserve_ports, write_ports_file
from .memory import Heap
from .metrics import Metrics
from .routing import RouteError, RouteTable, parse_iso
from .settings import Settings
from .upstream import Pool, UpstreamProtocol
from .wire import MARK_HEADER

log = logging.getLogger("hubkit_proxy")


class Proxy:
    def __init__(self, settings: Settings, role: str = "single") -> None:
        self.settings = settings
        self.role = role
        self.group: Any = None  # workers.WorkerGroup of a master
        self.reserved: list[socket.socket] = []  # a master's hold on the workers' port
        self.instance = uuid.uuid4().hex[:12]  # changes on restart: lets the hub plugin notice one
        self.routes = RouteTable(host_routing=settings.host_routing)
        self.metrics = Metrics()
        self.pool = Pool(self)
        self.health = Health(self)
        self.errors = ErrorPages(settings.error_target, settings.error_path)
        self.clients: set[ClientProtocol] = set()
        self.idle_conns: set[UpstreamProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.custom_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in settings.custom_headers]
        # what requests to the hub's route "/" get besides: the mark that proves this proxy to the hub
        self.hub_headers = self.custom_headers + (
            [(MARK_HEADER, settings.hub_mark.encode("latin-1"))] if settings.hub_mark else []
        )
        self.servers: list[asyncio.AbstractServer] = []
        self.journal: Journal | None = None
        self.sweeper: asyncio.Task[None] | None = None
        self.checker: asyncio.Task[None] | None = None
        self.exit = asyncio.Event()  # set by signals, or when orphaned
        self.orphaned = False  # the state file's directory is gone (see _sweep)
        self.ports: dict[str, int | None] = {}  # what was bound (port 0 resolved)
        self.heap = Heap()
        self.heap.tune()
        self.idle_since: float | None = None  # monotonic time the last client connection closed

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        if self.role != "worker":  # a worker's table comes from its master
            await self._load_table()
        loop = asyncio.get_running_loop()
        public_ssl = _server_ssl(s.ssl_key, s.ssl_cert, s.ssl_ca)
        proto = "https" if public_ssl else "http"
        if s.nginx_routes and self.role != "worker":
            from .nginxplane import NginxPlane

            NginxPlane(self, s.nginx_routes, s.nginx_pid, s.nginx_listen).start()
        if self.role == "master":
            from .workers import WorkerGroup

            port, self.reserved = reserve_ports(s.ip, s.port)
            self.group = WorkerGroup(self, port)
            await self.group.start()
        else:
            public = await create_listener(
                lambda: ClientProtocol(self, proto),
                s.ip,
                s.port,
                ssl=public_ssl,
                backlog=2048,
                reuse_port=self.role == "worker",
            )
            self.servers.append(public)
            port = bound_port(public)
        self.ports = {"port": port, "api_port": None, "metrics_port": None}
        self.sweeper = loop.create_task(self._sweep())
        if self.role == "worker":
            self.checker = loop.create_task(self.health.run())
            return
        if self.role == "single":
            self.checker = loop.create_task(self.health.run())
        await self._listen_api()
        if s.pid_file:
            _write_pid(s.pid_file)
        if s.ports_file:
            write_ports_file(s.ports_file, self.ports)
        log.info(
            "proxying %s://%s:%d, API on %s:%s (%d routes, %s loop, %s)",
            proto,
            s.ip or "*",
            port,
            s.api_ip,
            self.ports["api_port"],
            len(self.routes),
            event_loop_name(),
            f"{s.workers} worker processes" if self.group is not None else "one process",
        )

    async def _load_table(self) -> None:
        s = self.settings
        if s.state_file:
            self.journal = Journal(s.state_file)
            n = self.journal.load(self.routes)
            log.info("restored %d routes from %s", n, s.state_file)
        if s.peers:
            await self.sync_from_peers()
        if s.default_targets:
            # Like CHP: "/" without the jupyterhub marker, so JupyterHub never deletes it.
            want: dict[str, object] = {"target": s.default_targets[0]}
            if len(s.default_targets) > 1:
                want["targets"] = list(s.default_targets)
            existing = self.routes.get("/")
            if existing is None or existing.target_urls != s.default_targets:
                self.routes.add("/", want)

    async def _listen_api(self) -> None:
        s = self.settings
        extra = [(b"X-Hubkit-Proxy-Instance", self.instance.encode())]
        api = RouteApi(self)
        api_ssl = _server_ssl(s.api_ssl_key, s.api_ssl_cert, None)
        api_server = await create_listener(
            lambda: ApiProtocol(api.handle, s.max_api_body, extra),
            s.api_ip,
            s.effective_api_port,
            ssl=api_ssl,
        )
        self.servers.append(api_server)
        self.ports["api_port"] = bound_port(api_server)
        if s.metrics_port is not None:
            metrics = await create_listener(
                lambda: ApiProtocol(api.handle, 4096, extra), s.metrics_ip, s.metrics_port
            )
            self.servers.append(metrics)
            self.ports["metrics_port"] = bound_port(metrics)

    async def drain(self, grace: float) -> None:
        """Stop accepting, close idle keep-alive connections, give busy ones ``grace`` seconds to finish."""
        for server in self.servers:
            server.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for client in list(self.clients):
                if client.current is None and client.tunnel is None:
                    client.close()
            if not self.clients:
                return
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        if self.group is not None:
            await self.group.stop()
        for sock in self.reserved:
            sock.close()
        for task in (self.sweeper, self.checker):
            if task is not None:
                task.cancel()
        for client in list(self.clients):
            client.close()
        for route in list(self.routes):
            route.close_connections()
        if self.journal is not None:
            if not self.orphaned:
                self.journal.compact()  # keeps the latest last_activity across a clean restart
            self.journal.close()
        for path in (self.settings.pid_file, self.settings.ports_file):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    async def sync_from_peers(self) -> None:
        """Copy the table from the first replica that answers: it kept receiving changes while we were down."""
        headers = {"Authorization": f"token {self.settings.auth_token}"} if self.settings.auth_token else {}
        for peer in self.settings.peers:
            try:
                got = await fetch(peer.rstrip("/") + "/api/routes", headers, seconds=1.0)
                if got.status != 200:
                    raise ValueError(f"status {got.status}")
                table = json.loads(got.body)
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("peer %s unavailable: %s", peer, exc)
                continue
            for path in [r.path for r in self.routes if r.path not in table]:
                self.routes.remove(path)
            for path, data in table.items():
                try:
                    seen = data.get("last_activity")
                    self.routes.add(path, data, parse_iso(seen) if seen else None)
                except (RouteError, ValueError, AttributeError) as exc:
                    log.warning("peer route %s skipped: %s", path, exc)
            log.info("copied %d routes from peer %s", len(table), peer)
            return

    async def _sweep(self) -> None:
        """Timeouts on a 1 s tick: cheaper than a timer per request, precise enough for second-scale limits."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for client in list(self.clients):
                client.check_timeouts(now)
            self.pool.sweep(now)
            self._trim_when_idle(now)
            state = self.settings.state_file
            if state and _dir_gone(state):
                # The hub's data dir was removed (a test's tmp dir, an uninstalled hub): nobody can drive this
                # proxy any more, so an embedded one should not linger as an orphan.
                log.warning("state directory of %s is gone; exiting", state)
                self.orphaned = True
                self.exit.set()
                return

    def _trim_when_idle(self, now: float) -> None:
        """After 10 s without client connections, hand free heap memory back once (see ``memory.py``)."""
        if self.clients:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        elif self.idle_since > 0 and now - self.idle_since > 10:
            self.heap.trim()
            self.idle_since = 0.0  # trimmed; the next connection re-arms it

    def render_metrics(self) -> str:
        extra = {"hubkit_proxy_routes": ("Routes in the table.", len(self.routes))}
        info = {"loop": event_loop_name(), "heap_tuned": str(self.heap.tuned).lower()}
        if self.group is None:
            return self.metrics.render(extra, info)
        # a master's own counters are empty: the traffic is the workers'
        info["workers"] = str(self.settings.workers)
        text = Metrics.merged(self.group.worker_metrics()).render(extra, info)
        lines = [
            "# HELP hubkit_proxy_worker_requests_total Proxied HTTP requests by worker process.",
            "# TYPE hubkit_proxy_worker_requests_total counter",
        ]
        for w in self.group.workers:
            n = sum(w.metrics.get("requests", {}).values())
            lines.append(f'hubkit_proxy_worker_requests_total{{worker="{w.index}"}} {n}')
        return text + "\n".join(lines) + "\n"


def event_loop_name() -> str:
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def _server_ssl(key: str | None, cert: str | None, ca: str | None) -> ssl.SSLContext | None:
    if not (key and cert):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key, password=os.environ.get("CONFIGPROXY_SSL_KEY_PASSPHRASE"))
    if ca:
        ctx.load_verify_locations(ca)
    return ctx


def _write_pid(path: str) -> None:
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))


def _dir_gone(path: str) -> bool:
    return not os.path.isdir(os.path.dirname(os.path.abspath(path)))
