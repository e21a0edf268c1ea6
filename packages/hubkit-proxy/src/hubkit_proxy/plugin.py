"""hubkit's routing plugin: ``ProxyBackend`` for hubkit-proxy (``"hubkit-proxy"``) and for CHP (``"chp"``).

This is the only module of the package that imports the hubkit core. Both backends talk the same CHP route API;
they differ in the command they launch and in what survives a proxy restart: hubkit-proxy reloads its journal
(and copies from a replica), CHP starts empty.

Who repairs what: this plugin keeps the embedded proxy *process* alive (restarted the moment it exits); the
core's route reconciler (``hubkit/routing/reconcile.py``) is the one mechanism that makes the route *table* equal
to the database. There is no second copy of the table here: ``get_routes`` reports any disagreement between
replicas as a missing route, so the reconciler's next pass pushes it to all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from hubkit.interfaces import Route
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry, HubInfo

from . import launcher
from .chpclient import ChpClient, ProxyApiError, path_to_routespec, routespec_to_path
from .listen import read_ports_file
from .plugin_config import REPLICA_SOURCES, ChpConfig, HubkitProxyConfig, api_token

log = logging.getLogger("hubkit_proxy.plugin")
MAX_RESTART_DELAY = 30.0


class ReplicaSource(Protocol):
    """Where the replicas' APIs are, for proxies whose replicas come and go (e.g. a Kubernetes Deployment)."""

    async def start(self, on_change: Callable[[list[str]], None]) -> None:
        """Begin following the replicas; call ``on_change(api_urls)`` once before returning and on every change."""

    async def stop(self) -> None: ...


def load_replica_source(name: str) -> Callable[[dict[str, Any], HubInfo], ReplicaSource]:
    """An entry point of group ``hubkit.proxy_replicas`` by name, or ``"module:attribute"``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    found = [ep for ep in entry_points(group=REPLICA_SOURCES) if ep.name == name]
    if not found:
        raise ProxyApiError(f"no replica source {name!r} in entry-point group {REPLICA_SOURCES}")
    return found[0].load()  # type: ignore[no-any-return]


class ChpBackend:
    """Drives one proxy (plus replicas) through the CHP API."""

    name = "chp"
    reports_ports = False  # CHP cannot say which port 0 became

    def __init__(self, config: ChpConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        # per-user subdomains route by host (JupyterHub starts CHP with --host-routing for subdomain_host)
        self.host_routing = config.host_routing or bool(hub.subdomain_host)
        self.token = api_token(config.auth_token, hub.data_dir)
        self.pid_file = config.pid_file or os.path.join(hub.data_dir, f"{self.name}.pid")
        self.log_file = config.log_file or os.path.join(hub.data_dir, f"{self.name}.log")
        self.ports_file = os.path.join(hub.data_dir, f"{self.name}.ports.json")
        api = urlsplit(config.api_url)
        self.wanted_ports = (hub.public_port, api.port if api.port is not None else 8001)
        if 0 in self.wanted_ports and config.should_start and not self.reports_ports:
            raise ProxyApiError(
                f"{self.name} cannot report a port chosen by the kernel: configure real ports"
            )
        self.public_port = hub.public_port  # the bound port once known (port 0 resolved)
        # The primary retries (JupyterHub-like backoff); replicas get one attempt so a dead replica cannot stall
        # every route change: it catches up from a peer when it restarts, and the core's reconcile re-adds.
        self.clients = [
            ChpClient(
                url,
                self.token,
                request_timeout=config.request_timeout,
                retry_seconds=config.retry_seconds if i == 0 else 0.0,
            )
            for i, url in enumerate(self.api_urls())
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.restarts = 0
        self.restarted = asyncio.Event()  # set after each restart (tests and logs wait on it)

    def api_urls(self) -> list[str]:
        return [self.config.api_url]

    @property
    def primary(self) -> ChpClient:
        if not self.clients:
            raise ProxyApiError("no proxy replica is known (yet)")
        return self.clients[0]

    # -- token and command ----------------------------------------------------------------------------------
    def default_command(self) -> list[str]:
        found = os.environ.get("HUBKIT_CHP_BIN") or shutil.which("configurable-http-proxy")
        if not found:
            raise ProxyApiError(
                "configurable-http-proxy not found (set [proxy.chp] command or HUBKIT_CHP_BIN)"
            )
        return [found]

    def command(self, public_port: int, api_port: int) -> list[str]:
        api = urlsplit(self.config.api_url)
        cmd = list(self.config.command or self.default_command())
        cmd += ["--ip", self.hub.public_ip, "--port", str(public_port)]
        cmd += ["--api-ip", api.hostname or "127.0.0.1", "--api-port", str(api_port)]
        cmd += [
            "--default-target",
            self.hub.hub_url,
            "--error-target",
            self.hub.hub_url.rstrip("/") + "/hub/error",
        ]
        if self.hub.ssl_key and self.hub.ssl_cert:
            cmd += ["--ssl-key", self.hub.ssl_key, "--ssl-cert", self.hub.ssl_cert]
        if self.host_routing:
            cmd.append("--host-routing")
        if self.config.proxy_timeout_ms:
            cmd += ["--proxy-timeout", str(self.config.proxy_timeout_ms)]
        return cmd + self.config.extra_args

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def startup(self) -> None:
        if self.config.should_start:
            await self.ensure_running()
            await self.ensure_default_route()
            if self.config.restart_on_exit:
                self._spawn_standby()
                self.watcher = asyncio.get_running_loop().create_task(self._watch())
        elif not self.clients or not await self.primary.ping():
            log.warning(
                "proxy API %s is not reachable yet",
                self.clients[0].api_url if self.clients else "(none found)",
            )

    async def shutdown(self) -> None:
        """Disconnect only: the proxy keeps serving users while the hub is down."""
        await self._stop_watching()
        self._drop_standby()
        for client in self.clients:
            await client.aclose()

    async def _stop_watching(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _use_ports(self, public: int, api: int) -> None:
        """Point the primary client at the API port actually bound (port 0 resolved)."""
        self.public_port = public
        parts = urlsplit(self.config.api_url)
        netloc = (
            f"{parts.hostname}:{api}" if ":" not in (parts.hostname or "") else f"[{parts.hostname}]:{api}"
        )
        self.primary.api_url = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")

    def _sticky_ports(self) -> tuple[int, int]:
        """Ports to bind: configured ones, except that a port 0 the last proxy resolved stays what it was.

        Browsers hold the public URL, so a restarted proxy must come back on the same port; the last bound ports
        are read from the ports file, which a killed proxy leaves behind.
        """
        public, api = self.wanted_ports
        if 0 not in (public, api):
            return public, api
        last = read_ports_file(self.ports_file) or {}
        if not public and isinstance(last.get("port"), int):
            public = last["port"]
        if not api and isinstance(last.get("api_port"), int):
            api = last["api_port"]
        return public, api

    async def ensure_running(self) -> bool:
        """Reuse a live embedded proxy (pid file + API ping) or launch one. True when it launched one."""
        pid = launcher.read_pid(self.pid_file)
        if pid is not None and launcher.pid_alive(pid):
            if self.reports_ports:
                found = read_ports_file(self.ports_file) or {}
                if found.get("pid") == pid and isinstance(found.get("api_port"), int):
                    self._use_ports(int(found.get("port") or 0), int(found["api_port"]))
            if await self.primary.ping():
                log.info("reusing running %s (pid %d)", self.name, pid)
                return False
        sticky = self._sticky_ports()
        try:
            await self._launch(*sticky)
        except ProxyApiError:
            if sticky == self.wanted_ports:
                raise
            log.warning(
                "%s could not get its previous ports %s back; binding %s",
                self.name,
                sticky,
                self.wanted_ports,
            )
            await self._launch(*self.wanted_ports)
        return True

    def launch_env(self) -> dict[str, str]:
        """The launched proxy's environment: secrets go here, never on its command line."""
        return dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)

    async def _launch(self, public_port: int, api_port: int) -> None:
        env = self.launch_env()
        cmd = self.command(public_port, api_port)
        log.info("starting %s: %s", self.name, " ".join(cmd))
        self.proc = proc = launcher.launch(cmd, env, self.pid_file, self.log_file)
        if not self.reports_ports:
            self.public_port = public_port
        await self._await_up(proc)

    async def _await_up(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait until ``proc`` listens (its ports file, when it writes one) and its API answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout
        if self.reports_ports:
            try:
                ports = await launcher.wait_ports(self.ports_file, proc, self.config.start_timeout)
            except (RuntimeError, TimeoutError) as exc:
                self._give_up(proc)
                raise ProxyApiError(f"{self.name} {exc}: {self._last_words()}; see {self.log_file}") from exc
            self._use_ports(int(ports["port"] or 0), int(ports["api_port"] or 0))
        while loop.time() < deadline:
            if proc.poll() is not None:
                raise ProxyApiError(
                    f"{self.name} exited with {proc.returncode}: {self._last_words()}; see {self.log_file}"
                )
            if await self.primary.ping():
                return
            await asyncio.sleep(0.01)
        self._give_up(proc)
        raise ProxyApiError(
            f"{self.name} API did not answer within {self.config.start_timeout}s; see {self.log_file}"
        )

    def _last_words(self) -> str:
        """The proxy's last log line (why it stopped: e.g. its port is taken), for the hub's own error."""
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.log_file) - 2000))
                lines = [x for x in fh.read().decode(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "(no log)"
        return lines[-1].strip()[-300:] if lines else "(no output)"

    def _give_up(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop_proxy(self) -> bool:
        """Stop the embedded proxy explicitly (tests, ``POST /hub/api/shutdown`` with ``"proxy": true``); the
        hub never does this on its own. A proxy run externally (``should_start = false``) is left alone."""
        if not self.config.should_start:
            return False
        if self.watcher is not None:
            self.watcher.cancel()  # an explicit stop must not look like a crash to restart
            self.watcher = None
        self._drop_standby()
        stopped = launcher.stop(self.pid_file)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
            self.proc = None
        return stopped

    async def _watch(self) -> None:
        """Restart the embedded proxy as soon as it exits; its routes come back from its journal (hubkit-proxy)
        or from the core's next reconcile (CHP keeps none)."""
        while True:
            pid = launcher.read_pid(self.pid_file)
            if pid is None:
                return
            await launcher.wait_exit(pid)
            launcher.reap(pid)
            if self._data_dir_gone():
                log.warning("data dir %s is gone; not restarting %s", self.hub.data_dir, self.name)
                return
            log.warning("%s (pid %d) exited; restarting it", self.name, pid)
            if await self._take_over():
                self.restarts += 1
                self.restarted.set()
                self._spawn_standby()
                continue
            delay = 0.0
            while True:
                try:
                    await self.ensure_running()
                    break
                except ProxyApiError as exc:
                    delay = min(MAX_RESTART_DELAY, max(0.5, delay * 2))  # a crash loop backs off
                    log.error("restarting %s failed (next try in %.1fs): %s", self.name, delay, exc)
                    await asyncio.sleep(delay)
            self.restarts += 1
            self.restarted.set()
            self._spawn_standby()

    # A warm standby is a hubkit-proxy feature (--standby-fd); the CHP backend has none.
    def _spawn_standby(self) -> None:
        pass

    def _drop_standby(self) -> None:
        pass

    async def _take_over(self) -> bool:
        return False

    def _data_dir_gone(self) -> bool:
        """A removed data dir means the hub was uninstalled (or a test ended): nobody wants the proxy back."""
        return not os.path.isdir(self.hub.data_dir)

    async def ensure_default_route(self) -> None:
        """Route ``/`` to this hub: a reused embedded proxy may still send it to an earlier hub's address."""
        want = self.default_route()
        for client in self.clients:
            try:
                have = (await client.all()).get("/")
            except ProxyApiError as exc:
                log.warning("proxy %s unavailable: %s", client.api_url, exc)
                continue
            if not isinstance(have, dict) or any(have.get(k) != v for k, v in want.items()):
                log.info("pointing the default route of %s at %s", client.api_url, want["target"])
                await client.add("/", want)

    def default_route(self) -> dict[str, Any]:
        return {"target": self.hub.hub_url}

    # -- ProxyBackend ---------------------------------------------------------------------------------------
    def _body(self, route: Route) -> dict[str, Any]:
        body = {k: v for k, v in route.data.items() if k != "last_activity"}
        body["target"] = route.target
        body["jupyterhub"] = True
        return body

    async def _fan_out(self, op: str, path: str, body: dict[str, Any] | None = None) -> None:
        """Primary first (its failure is the caller's error), then all replicas at once (failures logged)."""

        async def one(client: ChpClient) -> None:
            if op == "add":
                assert body is not None
                await client.add(path, body)
            else:
                await client.delete(path)

        await one(self.primary)
        results = await asyncio.gather(*(one(c) for c in self.clients[1:]), return_exceptions=True)
        for client, result in zip(self.clients[1:], results, strict=True):
            if isinstance(result, Exception):
                log.warning("replica %s missed %s %s: %s", client.api_url, op, path, result)

    async def add_route(self, route: Route) -> None:
        path = routespec_to_path(route.routespec, self.host_routing)
        await self._fan_out("add", path, self._body(route))

    async def delete_route(self, routespec: str) -> None:
        await self._fan_out("delete", routespec_to_path(routespec, self.host_routing))

    async def get_routes(self) -> dict[str, Route]:
        """The hub's routes. With replicas, a route that not every answering replica holds with the same target
        is reported with an empty target, so the core's reconciler re-adds it everywhere."""
        tables = [await self.primary.all()]
        for client in self.clients[1:]:
            try:
                tables.append(await client.all())
            except ProxyApiError as exc:
                log.warning("replica %s unavailable: %s", client.api_url, exc)
        copies: dict[str, list[dict[str, Any]]] = {}
        for table in tables:
            for path, data in table.items():
                if isinstance(data, dict) and data.get("jupyterhub"):
                    copies.setdefault(path, []).append(data)
        out: dict[str, Route] = {}
        for path, datas in copies.items():
            targets = {str(d.get("target", "")) for d in datas}
            agreed = len(datas) == len(tables) and len(targets) == 1
            routespec = path_to_routespec(path, self.host_routing)
            rest = {k: v for k, v in datas[0].items() if k not in ("target", "jupyterhub")}
            seen = [str(d["last_activity"]) for d in datas if d.get("last_activity")]
            if seen:
                rest["last_activity"] = max(seen)  # ISO 8601 in UTC with the same format sorts as time
            out[routespec] = Route(routespec, targets.pop() if agreed else "", rest)
        return out


class HubkitProxyBackend(ChpBackend):
    name = "hubkit-proxy"
    reports_ports = True

    def __init__(self, config: HubkitProxyConfig, hub: HubInfo) -> None:
        self.hconfig = config
        self.source: ReplicaSource | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.standby: launcher.Standby | None = None
        super().__init__(config, hub)

    def api_urls(self) -> list[str]:
        if self.hconfig.discovery:
            return []  # filled in by the replica source at startup
        return [self.config.api_url, *self.hconfig.replicas]

    async def startup(self) -> None:
        if self.hconfig.discovery:
            self.source = load_replica_source(self.hconfig.discovery)(
                self.hconfig.discovery_options, self.hub
            )
            await self.source.start(self.set_replicas)
        await super().startup()

    async def shutdown(self) -> None:
        if self.source is not None:
            await self.source.stop()
        await super().shutdown()

    def set_replicas(self, urls: list[str]) -> None:
        """Follow the discovered replicas: a new one gets a client and this hub's routes, a gone one is dropped."""
        wanted = sorted({u.rstrip("/") for u in urls})
        have = {c.api_url: c for c in self.clients}
        new = [u for u in wanted if u not in have]
        self.clients = [
            have.pop(u)
            if u in have
            else ChpClient(u, self.token, request_timeout=self.config.request_timeout, retry_seconds=0.0)
            for u in wanted
        ]
        if new or have:
            log.info("proxy replicas now %s", ", ".join(wanted) or "none")
        for gone in have.values():
            self._spawn(gone.aclose())
        if new and len(self.clients) > len(new):
            self._spawn(self._seed(new))

    async def _seed(self, new: list[str]) -> None:
        """Give replicas that just appeared this hub's routes, copied from one that was there before (the core's
        reconciler would add them at its next pass; this makes a scaled-up proxy route at once)."""
        fresh = [c for c in self.clients if c.api_url in new]
        for source in [c for c in self.clients if c.api_url not in new]:
            try:
                table = await source.all()
            except ProxyApiError as exc:
                log.warning("replica %s unavailable: %s", source.api_url, exc)
                continue
            for path, data in table.items():
                if not isinstance(data, dict) or not data.get("jupyterhub"):
                    continue
                body = {k: v for k, v in data.items() if k != "last_activity"}
                for client in fresh:
                    try:
                        await client.add(path, body)
                    except ProxyApiError as exc:
                        log.warning("new replica %s missed %s: %s", client.api_url, path, exc)
            return

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def default_command(self) -> list[str]:
        return [sys.executable, "-m", "hubkit_proxy"]

    def _spawn_standby(self) -> None:
        """Start the next standby, bound for the ports the proxy has now (it takes them over as they are)."""
        self._drop_standby()
        if not (self.hconfig.standby and self.config.should_start and self.config.restart_on_exit):
            return
        api_port = urlsplit(self.primary.api_url).port or 0
        env = self.launch_env()
        self.standby = launcher.Standby(self.command(self.public_port, api_port), env, self.log_file)

    def _drop_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is not None:
            standby.release()

    async def _take_over(self) -> bool:
        """Tell the standby to take over; True once it answers on the proxy's ports."""
        standby, self.standby = self.standby, None
        proc = standby.activate(self.pid_file) if standby is not None else None
        if proc is None:
            return False
        self.proc = proc
        try:
            await self._await_up(proc)
        except ProxyApiError as exc:
            log.warning("the standby could not take over (%s); starting a new proxy", exc)
            return False
        log.info("standby (pid %d) took over", proc.pid)
        return True

    def command(self, public_port: int, api_port: int) -> list[str]:
        state = self.hconfig.state_file or os.path.join(self.hub.data_dir, "hubkit-proxy-routes.jsonl")
        cmd = [
            *super().command(public_port, api_port),
            "--state-file",
            state,
            "--ports-file",
            self.ports_file,
        ]
        for peer in self.hconfig.replicas:
            cmd += ["--peer", peer]
        c = self.hconfig
        if c.workers > 1:
            cmd += ["--workers", str(c.workers)]
        for target in c.hub_targets:
            cmd += ["--default-target", target]
        if c.hub_targets:
            cmd += ["--health-check-path", f"{self.hub.base_url}hub/health"]
            cmd += ["--health-check-interval", str(c.health_check_interval_ms)]
            cmd += ["--health-check-timeout", str(c.health_check_timeout_ms)]
            cmd += ["--fail-timeout", str(c.fail_timeout_ms)]
        return cmd

    def launch_env(self) -> dict[str, str]:
        env = super().launch_env()
        if self.hub.forward_mark:
            env["HUBKIT_PROXY_HUB_MARK"] = self.hub.forward_mark
        return env

    def marks_hub_requests(self) -> bool:
        """The proxy this backend launches marks what it sends the hub (core: MarksHubRequests); one run by
        someone else may not have the mark, so the hub keeps trusting by address there."""
        return self.config.should_start and bool(self.hub.forward_mark)

    def default_route(self) -> dict[str, Any]:
        route = super().default_route()
        if self.hconfig.hub_targets:
            route["targets"] = [self.hub.hub_url, *self.hconfig.hub_targets]
        return route


def _chp(config: ChpConfig, hub: HubInfo) -> ChpBackend:
    return ChpBackend(config, hub)


def _hubkit(config: HubkitProxyConfig, hub: HubInfo) -> HubkitProxyBackend:
    return HubkitProxyBackend(config, hub)


@hookimpl
def hubkit_register_proxies(registry: BackendRegistry[object]) -> None:
    registry.add(
        "hubkit-proxy",
        _hubkit,
        config=HubkitProxyConfig,
        description="hubkit-proxy: fast CHP-compatible proxy whose routes survive restarts (journal + replicas)",
    )
    registry.add("chp", _chp, config=ChpConfig, description="configurable-http-proxy from npm")
