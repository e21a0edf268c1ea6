"""Fixtures: a real backend (aiohttp, in the test's loop), real proxy processes (hubkit-proxy and CHP)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import WSMsgType, web

HERE = Path(__file__).resolve()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    """A port that was free a moment ago: only for programs that cannot bind port 0 and report it (CHP,
    JupyterHub); their starts retry on EADDRINUSE (``ADDRESS_IN_USE``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ADDRESS_IN_USE = "address already in use"  # in hubkit-proxy's and node's (CHP's) bind errors alike


def repo_root() -> Path:
    for parent in HERE.parents:
        if (parent / ".git").exists():
            return parent
    return HERE.parents[3]


def chp_bin() -> str | None:
    env = os.environ.get("HUBKIT_CHP_BIN")
    if env:
        return env
    path = repo_root() / ".cache/npm/node_modules/.bin/configurable-http-proxy"
    return str(path) if path.exists() else None


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------------------------
# Backend: the target the proxy forwards to
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Backend:
    url: str
    port: int
    hits: list[str] = field(default_factory=list)
    error_hits: list[str] = field(default_factory=list)
    open_ws: int = 0


def make_backend_app(state: Backend) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": {k: v for k, v in request.headers.items()},
                "body_len": len(body),
                "chunked": request.headers.get("Transfer-Encoding", "") == "chunked",
            }
        )

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "1024"))
        chunked = request.query.get("chunked") == "1"
        resp = web.StreamResponse()
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = size
        await resp.prepare(request)
        block = b"x" * (1 << 20)
        left = size
        while left > 0:
            n = min(left, len(block))
            await resp.write(block[:n])
            left -= n
        await resp.write_eof()
        return resp

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query.get("ms", "300")) / 1000)
        return web.Response(text="slow")

    async def error_page(request: web.Request) -> web.Response:
        state.error_hits.append(request.path_qs)
        code = request.match_info["code"]
        return web.Response(text=f"hub error page {code}", content_type="text/html")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(autoping=True)
        await sock.prepare(request)
        state.open_ws += 1
        try:
            async for msg in sock:
                if msg.type == WSMsgType.TEXT:
                    if msg.data.startswith("close:"):
                        await sock.close(code=int(msg.data[6:]), message=b"bye")
                        break
                    await sock.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await sock.send_bytes(msg.data)
        finally:
            state.open_ws -= 1
        return sock

    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("*", "/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/hang", hang)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hub/error/{code}", error_page)
    app.router.add_get("/ws", ws)
    app.router.add_get("/user/{name}/ws", ws)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    state = Backend(url="", port=0)
    runner = web.AppRunner(
        make_backend_app(state), handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # the kernel picks the port: no race with other programs
    await site.start()
    state.port = int(runner.addresses[0][1])
    state.url = f"http://127.0.0.1:{state.port}"
    yield state
    await runner.cleanup()


# ---------------------------------------------------------------------------------------------------------------
# Proxy processes
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ProxyProc:
    """A proxy process. hubkit-proxy binds port 0 and reports its ports through ``--ports-file``; CHP cannot,
    so it gets ports that were free a moment ago and is restarted on new ones if another program took them.
    A restart (``kill`` then ``start``) keeps the ports of the first start: clients and peers hold them."""

    kind: str
    port: int
    api_port: int
    token: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    ports_file: str | None = None
    started_once: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def _command(self) -> list[str]:
        ports = ["--port", str(self.port), "--api-port", str(self.api_port)]
        if self.ports_file:
            ports += ["--ports-file", self.ports_file]
        return [*self.args, *ports]

    def start(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            err = self._try_start(deadline)
            if err is None:
                return
            if ADDRESS_IN_USE not in err.lower() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} exited: {err}")
            if self.kind == "chp" and not self.started_once:
                self.port, self.api_port = free_port(), free_port()  # someone took them: pick again
            else:
                time.sleep(0.2)  # a restart must get its own ports back: wait for them

    def _try_start(self, deadline: float) -> str | None:
        """Start once; None when up, else the process's error output."""
        if self.ports_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.ports_file)
        self.proc = subprocess.Popen(
            self._command(), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = ""
                if self.proc.stderr is not None:
                    err = self.proc.stderr.read().decode()
                    self.proc.stderr.close()
                self.proc = None
                return f"exit {err}"
            if self.ports_file and not self.started_once:
                got = read_ports(self.ports_file, self.proc.pid)
                if got is None:
                    time.sleep(0.02)
                    continue
                self.port, self.api_port = got
            try:
                httpx.get(self.api_url + "/api/routes", headers=self.auth, timeout=0.5)
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    self.started_once = True
                    return None
            except (httpx.HTTPError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not come up")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def metric(self, name: str) -> float:
        text = httpx.get(self.api_url + "/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)


def hubkit_proxy_cmd() -> list[str]:
    exe = shutil.which("hubkit-proxy", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "hubkit_proxy.cli"]


def read_ports(path: str, pid: int) -> tuple[int, int] | None:
    """(port, api_port) from a hubkit-proxy ``--ports-file`` written by process ``pid``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if data.get("pid") != pid:
        return None
    return int(data["port"]), int(data["api_port"])


def make_proxy(kind: str, *extra: str, token: str | None = None) -> ProxyProc:
    token = token or secrets.token_hex(16)
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=token)
    base = ["--ip", "127.0.0.1", "--api-ip", "127.0.0.1"]
    if kind == "chp":
        binary = chp_bin()
        require(
            binary is not None,
            "configurable-http-proxy not installed (npm install ... configurable-http-proxy@5)",
        )
        assert binary is not None
        args = [binary, *base, "--log-level", "warn", *extra]
        return ProxyProc(kind, free_port(), free_port(), token, args, env)
    args = [*hubkit_proxy_cmd(), *base, "--log-level", "warning", *extra]
    ports_file = os.path.join(tempfile.mkdtemp(prefix="hubkit-proxy-test-"), "ports.json")
    return ProxyProc(kind, 0, 0, token, args, env, ports_file=ports_file)


@pytest.fixture
def proxy_factory() -> Iterator[list[ProxyProc]]:
    """Start proxies with ``p = make_proxy(...); p.start(); started.append(p)``; all are killed afterwards."""
    started: list[ProxyProc] = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture(params=["hubkit", "chp"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def proxy(kind: str, proxy_factory: list[ProxyProc]) -> ProxyProc:
    p = make_proxy(kind)
    p.start()
    proxy_factory.append(p)
    return p


@pytest.fixture
def hproxy(proxy_factory: list[ProxyProc]) -> ProxyProc:
    p = make_proxy("hubkit", "--proxy-timeout", "2000")
    p.start()
    proxy_factory.append(p)
    return p
