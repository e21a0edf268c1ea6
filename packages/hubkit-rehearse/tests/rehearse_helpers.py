"""Real hubs for the rehearse tests, each a process on 127.0.0.1 started and killed (by pid) by the tests:

* :class:`HubkitHub`: ``hubkit -f <config>`` with hubkit-proxy, the dummy authenticator (shared password)
  and either the built-in ``test`` spawner (hundreds of users) or the local spawner with JupyterLab.
* :class:`JupyterHub`: JupyterHub 6.1.1 with configurable-http-proxy (npm), its DummyAuthenticator and
  either its SimpleLocalProcessSpawner running ``jupyterhub-singleuser`` (JupyterLab), or the stand-in
  in-hub spawner of ``jh_standin_spawner.py`` for many users.

Ports: hubkit binds port 0 everywhere (hub, proxy, proxy API) and reports the ports it got in its data dir.
JupyterHub and CHP cannot do that: JupyterHub is started on free ports and, if a port was taken in between
(the log says "address already in use"), started again on new ones. No test races another program for a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PASSWORD = "rehearse-pw"
ADDRESS_IN_USE = ("address already in use", "eaddrinuse", "errno 98")
# the same patience on both hubs: how long a server may take to answer, and to start at all
HTTP_TIMEOUT, START_TIMEOUT = 90, 120


def require(condition: bool, reason: str) -> None:
    """Skip when a real component is missing here; in CI (CI=true) fail instead."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def repo_root() -> Path:
    for parent in HERE.parents:
        if (parent / ".git").exists():
            return parent
    return HERE.parents[2]


def chp_bin() -> str | None:
    env = os.environ.get("HUBKIT_CHP_BIN")
    if env:
        return env
    path = repo_root() / ".cache/npm/node_modules/.bin/configurable-http-proxy"
    return str(path) if path.exists() else None


def env_with_bin() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


class HubProcess:
    """Common life cycle: write config, start, wait for ``/hub/api``, retry on a taken port, kill by pid."""

    name = "hub"

    def __init__(self, data: Path) -> None:
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.admin_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def configure(self) -> list[str]:
        """Pick ports, write the config; return the command line."""
        raise NotImplementedError

    def start(self, timeout: float = 120) -> None:
        for _attempt in range(5):
            cmd = self.configure()
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=self.data,
                    env=env_with_bin(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_up(timeout):
                self.after_start()
                return
            self.stop()
            if not any(s in self.log().lower() for s in ADDRESS_IN_USE):
                break
        raise AssertionError(f"{self.name} did not start:\n{self.log()[-4000:]}")

    def _wait_up(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if any(s in self.log().lower() for s in ADDRESS_IN_USE):
                return False
            if not self.learn_ports():
                time.sleep(0.05)
                continue
            try:
                if httpx.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        return False

    def learn_ports(self) -> bool:
        """Is ``self.port`` known yet? (A hub on port 0 reports it once bound.)"""
        return self.port != 0

    def after_start(self) -> None:
        return None

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/hub/api/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=60,
            **kw,
        )

    def user_names(self) -> list[str]:
        r = self.api("GET", "users?limit=1000")
        assert r.status_code == 200, r.text
        return sorted(u["name"] for u in r.json())

    def running_servers(self) -> dict[str, dict[str, Any]]:
        r = self.api("GET", "users?limit=1000&state=active")
        assert r.status_code == 200, r.text
        return {f"{u['name']}/{n}": s for u in r.json() for n, s in (u.get("servers") or {}).items()}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.kill_leftovers()

    def kill_leftovers(self) -> None:
        return None


class HubkitHub(HubProcess):
    name = "hubkit"

    def __init__(
        self,
        data: Path,
        *,
        spawner: str = "test",
        spawner_cfg: dict[str, Any] | None = None,
        limit: int = 100,
    ) -> None:
        super().__init__(data)
        self.spawner = spawner
        self.spawner_cfg = spawner_cfg or {}
        self.limit = limit
        self.config_path = data / "hubkit.toml"

    def configure(self) -> list[str]:
        from hubkit.config.toml_out import dump

        self.port = 0  # port 0 everywhere: the hub and its proxy report what they got (learn_ports)
        cfg: dict[str, Any] = {
            "hub": {
                "ip": "127.0.0.1",
                "port": 0,
                "hub_ip": "127.0.0.1",
                "hub_port": 0,
                "data_dir": str(self.data),
                "db_url": "sqlite+aiosqlite:///hubkit.sqlite",
                "admin_users": ["admin"],
                "default_url": "/lab",
                "allow_named_servers": True,
                "log_level": "WARNING",
            },
            "auth": {"backend": "dummy", "dummy": {"password": PASSWORD}},
            "spawner": {
                "backend": self.spawner,
                "concurrent_spawn_limit": self.limit,
                "http_timeout": HTTP_TIMEOUT,
                "start_timeout": START_TIMEOUT,
                self.spawner: self.spawner_cfg,
            },
            "proxy": {"backend": "hubkit-proxy", "hubkit-proxy": {"api_url": "http://127.0.0.1:0"}},
        }
        if self.spawner == "local":
            cfg["spawner"]["cmd"] = ["hubkit-singleuser"]
            cfg["spawner"]["local"] = {
                "home_dir": "users/{username}",
                "stop_grace_seconds": 5,
                **self.spawner_cfg,
            }
        self.config_path.write_text(dump(cfg))
        return [str(BIN / "hubkit"), "-f", str(self.config_path)]

    def learn_ports(self) -> bool:
        from hubkit.testing.processes import PROXY_PORTS_FILE, read_ports

        if not self.port:
            self.port = read_ports(self.data / PROXY_PORTS_FILE).get("port", 0)
        return self.port != 0

    def after_start(self) -> None:
        out = subprocess.run(
            [str(BIN / "hubkit"), "-f", str(self.config_path), "token", "admin"],
            cwd=self.data,
            env=env_with_bin(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        self.admin_token = out.stdout.strip().splitlines()[-1]

    def kill_leftovers(self) -> None:
        """The proxy and any local-spawner servers outlive the hub by design: kill them by their pids."""
        import json

        for f in (self.data / "local-spawner").glob("*.json"):
            for st in json.loads(f.read_text() or "{}").values():
                pg = st.get("pgid")
                if isinstance(pg, int) and pg > 1:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pg, signal.SIGKILL)
        for pidfile in self.data.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


JH_CONFIG = """
import sys
sys.path.insert(0, {here!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.concurrent_spawn_limit = {limit}
# spawn_throttle_retry_range is not a config trait in 6.1.1; the tornado setting it feeds can be set
c.JupyterHub.tornado_settings = {{"spawn_throttle_retry_range": {retry!r}}}
c.JupyterHub.db_url = "sqlite:///{data}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{data}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{data}/jupyterhub.pid"
c.ConfigurableHTTPProxy.pid_file = "{data}/jupyterhub-proxy.pid"
c.JupyterHub.services = [{{"name": "rehearse-admin", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["rehearse-admin"]}}]
c.JupyterHub.cleanup_servers = True
c.Spawner.http_timeout = {http_timeout}
c.Spawner.start_timeout = {start_timeout}
c.JupyterHub.log_level = "WARN"
"""
JH_LOCAL = """
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.SimpleLocalProcessSpawner.home_dir_template = "{data}/home/{{username}}"
"""
JH_STANDIN = """
c.JupyterHub.spawner_class = "jh_standin_spawner.InHubSpawner"
c.InHubSpawner.start_delay = {delay!r}
"""


class JupyterHub(HubProcess):
    name = "jupyterhub"

    def __init__(
        self,
        data: Path,
        *,
        spawner: str = "local",
        limit: int = 100,
        retry: tuple[int, int] = (30, 60),
        delay: float = 0.0,
    ) -> None:
        super().__init__(data)
        self.spawner = spawner
        self.limit = limit
        self.retry = retry
        self.delay = delay
        self.admin_token = secrets.token_hex(16)

    def configure(self) -> list[str]:
        chp = chp_bin()
        assert chp is not None
        self.port = free_port()
        text = JH_CONFIG.format(
            here=str(HERE),
            port=self.port,
            hub_port=free_port(),
            api_port=free_port(),
            chp=chp,
            password=PASSWORD,
            limit=self.limit,
            retry=self.retry,
            data=self.data,
            token=self.admin_token,
            http_timeout=HTTP_TIMEOUT,
            start_timeout=START_TIMEOUT,
        )
        if self.spawner == "local":
            text += JH_LOCAL.format(
                singleuser=str(BIN / "jupyterhub-singleuser"),
                args=["--allow-root"] if os.geteuid() == 0 else [],
                data=self.data,
            )
        else:
            text += JH_STANDIN.format(delay=self.delay)
        (self.data / "jupyterhub_config.py").write_text(text)
        return [str(BIN / "jupyterhub"), "-f", str(self.data / "jupyterhub_config.py")]

    def kill_leftovers(self) -> None:
        """JupyterHub stops its servers and CHP on SIGTERM (cleanup_servers); a hub that was killed harder
        leaves them, so kill whatever is left of the proxy by its pid file."""
        pidfile = self.data / "jupyterhub-proxy.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


def have_jupyterhub() -> bool:
    return (BIN / "jupyterhub").exists() and (BIN / "jupyterhub-singleuser").exists()


def have_hubkit() -> bool:
    return shutil.which("hubkit", path=str(BIN)) is not None


# -- running the command --------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str
    outdir: Path
    data: dict[str, Any] = field(default_factory=dict)

    def users(self) -> list[dict[str, Any]]:
        return list(self.data.get("users", []))


def rehearse_cmd() -> list[str]:
    return [sys.executable, "-m", "hubkit_rehearse"]


def run_rehearse(
    args: list[str],
    outdir: Path,
    *,
    admin_token: str | None = None,
    password: str | None = PASSWORD,
    timeout: float = 240,
) -> Result:
    """``python -m hubkit_rehearse ARGS --out OUTDIR`` with the secrets in the environment; the parsed result."""
    import json

    env = dict(os.environ)
    env.pop("HUBKIT_REHEARSE_ADMIN_TOKEN", None)
    env.pop("HUBKIT_REHEARSE_PASSWORD", None)
    if admin_token:
        env["HUBKIT_REHEARSE_ADMIN_TOKEN"] = admin_token
    if password is not None:
        env["HUBKIT_REHEARSE_PASSWORD"] = password
    p = subprocess.run(
        [*rehearse_cmd(), *args, "--out", str(outdir), "--live", "plain", "--progress-every", "5"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    result = outdir / "result.json"
    data = json.loads(result.read_text()) if result.exists() else {}
    return Result(p.returncode, p.stdout, p.stderr, outdir, data)


# -- a stand-in for a hostile or misconfigured hub, and a trap on another origin ---------------------------------


@dataclass
class Recorder:
    """What a raw HTTP listener received: request heads and bodies, in order."""

    port: int = 0
    requests: list[bytes] = field(default_factory=list)


class RawServer:
    """A tiny HTTP/1.1 server on 127.0.0.1:0 in a thread: ``respond(request_bytes) -> response_bytes``."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.rec = Recorder()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            self.rec.requests.append(head + body)
            writer.write(self.respond(head + body, self.rec.port))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.rec.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def __enter__(self) -> RawServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rec.port}"


def http_response(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    return head.encode() + b"\r\n" + body


@contextlib.contextmanager
def hub_process(hub: HubProcess) -> Iterator[HubProcess]:
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
