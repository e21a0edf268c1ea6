"""hubkit's routing plugin: ``ProxyBackend`` for hubkit-proxy (``"hubkit-proxy"``) and for CHP (``"chp"``).

This is the only module of the package that imports the hubkit core. Both backends talk the same CHP route API;
they differ in the command they launch and in what survives a proxy restart: hubkit-proxy reloads its journal
(and copies from a replica), CHP starts empty. Either way the backend also heals the table itself: a watchdog
restarts a dead embedded proxy and re-adds the routes this hub put there (the core's reconcile does the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol
from urllib.parse import urlsplit

from hubkit.interfaces import Route
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry, HubInfo
from pydantic import BaseModel, Field, model_validator

from . import launcher
from .chpclient import ChpClient, ProxyApiError, path_to_routespec, routespec_to_path

log = logging.getLogger("hubkit_proxy.plugin")
TOKEN_FILE = "proxy-auth-token"
REPLICA_SOURCES = "hubkit.proxy_replicas"
"""Entry-point group of replica sources: ``name = "module:factory"``, ``factory(options, hub) -> ReplicaSource``."""


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


class ChpConfig(BaseModel):
    """Options shared by both backends (``[proxy.chp]`` / ``[proxy.hubkit-proxy]``)."""

    model_config = {"extra": "forbid"}

    should_start: bool = Field(
        True,
        description="Launch the proxy as a child process that outlives the hub; false = it is run externally.",
    )
    api_url: str = Field("http://127.0.0.1:8001", description="The proxy's REST API URL.")
    auth_token: str | None = Field(
        None,
        repr=False,
        description="API secret; else env CONFIGPROXY_AUTH_TOKEN, else generated and kept 0600 in the data dir.",
    )
    command: list[str] | None = Field(None, description="Command to launch (default: the backend's proxy).")
    extra_args: list[str] = Field(default_factory=list, description="Extra command-line flags for the proxy.")
    pid_file: str | None = Field(
        None, description="Pid file of the embedded proxy (default: in the data dir)."
    )
    log_file: str | None = Field(
        None, description="stdout/stderr of the embedded proxy (default: in the data dir)."
    )
    host_routing: bool = Field(
        False, description="Routespecs start with a host; on by itself when the hub has [hub] subdomain_host."
    )
    start_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a launched proxy's API.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds per API request.")
    retry_seconds: float = Field(30.0, ge=0, description="Total seconds to retry connection errors and 5xx.")
    check_interval: float = Field(
        5.0,
        ge=0,
        description="Seconds between watchdog checks (dead embedded proxy, lost routes); 0 disables.",
    )
    proxy_timeout_ms: int | None = Field(None, description="--proxy-timeout passed to the proxy (ms).")


class HubkitProxyConfig(ChpConfig):
    """Options of the ``hubkit-proxy`` backend."""

    replicas: list[str] = Field(
        default_factory=list,
        description="API URLs of further replicas serving the same table; every change is pushed to all of them.",
    )
    state_file: str | None = Field(
        None,
        description="Route journal of the embedded proxy (default: in the data dir); restores routes at start.",
    )
    discovery: str | None = Field(
        None,
        description=f"Find the replicas at run time instead of listing them: a replica source from entry-point "
        f"group '{REPLICA_SOURCES}' (hubkit-spawn-k8s: 'kubernetes', the EndpointSlices of a Service). "
        "Replaces api_url and replicas; needs should_start = false.",
    )
    discovery_options: dict[str, Any] = Field(default_factory=dict, description="Options of that replica source.")

    @model_validator(mode="after")
    def _discovery_is_external(self) -> HubkitProxyConfig:
        if self.discovery and self.should_start:
            raise ValueError("discovery finds externally run replicas: set should_start = false")
        return self


class ChpBackend:
    """Drives one proxy (plus replicas) through the CHP API."""

    name = "chp"

    def __init__(self, config: ChpConfig, hub: HubInfo) -> None:
        self.config = config
        self.hub = hub
        # per-user subdomains route by host (JupyterHub starts CHP with --host-routing for subdomain_host)
        self.host_routing = config.host_routing or bool(hub.subdomain_host)
        self.token = self._token()
        self.pid_file = config.pid_file or os.path.join(hub.data_dir, f"{self.name}.pid")
        self.log_file = config.log_file or os.path.join(hub.data_dir, f"{self.name}.log")
        # The primary retries (JupyterHub-like backoff); replicas get one attempt so a dead replica cannot stall
        # every route change: it catches up from a peer when it restarts, and the watchdog re-adds.
        self.clients = [
            ChpClient(
                url,
                self.token,
                request_timeout=config.request_timeout,
                retry_seconds=config.retry_seconds if i == 0 else 0.0,
            )
            for i, url in enumerate(self.api_urls())
        ]
        self.known: dict[str, Route] = {}  # what this hub has put in the table (re-added after a restart)
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.restarts = 0

    def api_urls(self) -> list[str]:
        return [self.config.api_url]

    @property
    def primary(self) -> ChpClient:
        if not self.clients:
            raise ProxyApiError("no proxy replica is known (yet)")
        return self.clients[0]

    # -- token and command ----------------------------------------------------------------------------------
    def _token(self) -> str:
        if self.config.auth_token:
            return self.config.auth_token
        env = os.environ.get("CONFIGPROXY_AUTH_TOKEN")
        if env:
            return env
        path = os.path.join(self.hub.data_dir, TOKEN_FILE)
        try:
            with open(path) as fh:
                token = fh.read().strip()
            if token:
                return token
        except FileNotFoundError:
            pass
        os.makedirs(self.hub.data_dir, exist_ok=True)
        token = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token

    def default_command(self) -> list[str]:
        found = os.environ.get("HUBKIT_CHP_BIN") or shutil.which("configurable-http-proxy")
        if not found:
            raise ProxyApiError(
                "configurable-http-proxy not found (set [proxy.chp] command or HUBKIT_CHP_BIN)"
            )
        return [found]

    def command(self) -> list[str]:
        api = urlsplit(self.config.api_url)
        cmd = list(self.config.command or self.default_command())
        cmd += ["--ip", self.hub.public_ip, "--port", str(self.hub.public_port)]
        cmd += ["--api-ip", api.hostname or "127.0.0.1", "--api-port", str(api.port or 8001)]
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
        elif not self.clients or not await self.primary.ping():
            log.warning("proxy API %s is not reachable yet", self.clients[0].api_url if self.clients else "(none found)")
        if self.config.check_interval > 0:
            self.watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def shutdown(self) -> None:
        """Disconnect only: the proxy keeps serving users while the hub is down."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
        for client in self.clients:
            await client.aclose()

    async def ensure_running(self) -> bool:
        """Reuse a live embedded proxy (pid file + API ping) or launch one. True when it launched one."""
        pid = launcher.read_pid(self.pid_file)
        if pid is not None and launcher.pid_alive(pid) and await self.primary.ping():
            log.info("reusing running %s (pid %d)", self.name, pid)
            return False
        env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)
        cmd = self.command()
        log.info("starting %s: %s", self.name, " ".join(cmd))
        self.proc = launcher.launch(cmd, env, self.pid_file, self.log_file)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise ProxyApiError(f"{self.name} exited with {self.proc.returncode}; see {self.log_file}")
            if await self.primary.ping():
                return True
            await asyncio.sleep(0.05)
        raise ProxyApiError(
            f"{self.name} API did not answer within {self.config.start_timeout}s; see {self.log_file}"
        )

    def stop_proxy(self) -> bool:
        """Stop the embedded proxy explicitly (tests, ``POST /hub/api/shutdown`` with ``"proxy": true``); the
        hub never does this on its own. A proxy run externally (``should_start = false``) is left alone."""
        if not self.config.should_start:
            return False
        stopped = launcher.stop(self.pid_file)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
            self.proc = None
        return stopped

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval)
            try:
                await self.heal()
            except ProxyApiError as exc:
                log.warning("proxy check failed: %s", exc)

    async def heal(self) -> int:
        """Restart a dead embedded proxy and re-add routes this hub added that are missing. Returns re-adds."""
        if self.config.should_start:
            pid = launcher.read_pid(self.pid_file)
            if pid is None or not launcher.pid_alive(pid):
                log.warning("%s is not running; restarting it", self.name)
                if self.proc is not None:
                    self.proc.poll()
                await self.ensure_running()
                self.restarts += 1
        readded = 0
        for client in self.clients:
            try:
                present = await client.all()
            except ProxyApiError as exc:
                log.warning("proxy %s unavailable: %s", client.api_url, exc)
                continue
            for route in list(self.known.values()):
                path = routespec_to_path(route.routespec, self.host_routing)
                have = present.get(path)
                if have is None or have.get("target") != route.target:
                    await client.add(path, self._body(route))
                    readded += 1
        if readded:
            log.info("re-added %d routes to the proxy", readded)
        return readded

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
        self.known[route.routespec] = route

    async def delete_route(self, routespec: str) -> None:
        self.known.pop(routespec, None)
        await self._fan_out("delete", routespec_to_path(routespec, self.host_routing))

    async def get_routes(self) -> dict[str, Route]:
        out: dict[str, Route] = {}
        for path, data in (await self.primary.all()).items():
            if not isinstance(data, dict) or not data.get("jupyterhub"):
                continue
            routespec = path_to_routespec(path, self.host_routing)
            rest = {k: v for k, v in data.items() if k not in ("target", "jupyterhub")}
            out[routespec] = Route(routespec, str(data.get("target", "")), rest)
        return out


class HubkitProxyBackend(ChpBackend):
    name = "hubkit-proxy"

    def __init__(self, config: HubkitProxyConfig, hub: HubInfo) -> None:
        self.hconfig = config
        self.source: ReplicaSource | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        super().__init__(config, hub)

    def api_urls(self) -> list[str]:
        if self.hconfig.discovery:
            return []  # filled in by the replica source at startup
        return [self.config.api_url, *self.hconfig.replicas]

    async def startup(self) -> None:
        if self.hconfig.discovery:
            self.source = load_replica_source(self.hconfig.discovery)(self.hconfig.discovery_options, self.hub)
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
            have.pop(u) if u in have
            else ChpClient(u, self.token, request_timeout=self.config.request_timeout, retry_seconds=0.0)
            for u in wanted
        ]
        if new or have:
            log.info("proxy replicas now %s", ", ".join(wanted) or "none")
        for gone in have.values():
            self._spawn(gone.aclose())
        if new and self.known:
            self._spawn(self.heal())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def default_command(self) -> list[str]:
        return [sys.executable, "-m", "hubkit_proxy"]

    def command(self) -> list[str]:
        state = self.hconfig.state_file or os.path.join(self.hub.data_dir, "hubkit-proxy-routes.jsonl")
        cmd = [*super().command(), "--state-file", state]
        for peer in self.hconfig.replicas:
            cmd += ["--peer", peer]
        return cmd


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
