"""The processes a proxy benchmark run measures, all on 127.0.0.1 and all started with their shipped commands.

- backend: nginx (one worker) answering a 23-byte body on every path and a 1 MiB file at /1m.bin, plus the
  websocket echo server ``ws_echo.py``;
- targets: ``direct`` (the backends themselves), ``chp`` (configurable-http-proxy from npm), ``hubkit-proxy``
  with 1, 2 or 4 worker processes (the ``hubkit-proxy`` command, journal on as the embedded default runs it),
  and ``nginx-plane`` (hubkit-proxy's experimental ``--nginx-routes``: routes through hubkit-proxy's API,
  traffic through nginx).

hubkit-proxy binds port 0 and reports its ports; CHP and nginx cannot, so they get ports that were free a
moment ago and are started again on new ones if another program took them (EADDRINUSE).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = sys.executable
NGINX_MAIN = """daemon off;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/routes.conf;
}}
"""


def free_port() -> int:
    """Only for CHP and nginx, which cannot report a port of their own choosing (see ``_retry``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chp_bin() -> str:
    found = os.environ.get("HUBKIT_CHP_BIN") or str(
        ROOT / ".cache/npm/node_modules/.bin/configurable-http-proxy"
    )
    if not os.path.exists(found):
        raise SystemExit(
            f"CHP not found at {found}: npm install --prefix {ROOT}/.cache/npm configurable-http-proxy@5"
        )
    return found


def hubkit_proxy_cmd() -> list[str]:
    exe = shutil.which("hubkit-proxy", path=str(Path(PY).parent))
    return [exe] if exe else [PY, "-m", "hubkit_proxy"]


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        pkg = Path(chp_bin()).resolve().parents[1] / "package.json"
        out["chp"] = json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError, SystemExit):
        out["chp"] = "?"
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    out["nginx"] = nginx.stderr.strip().rsplit("/", 1)[-1]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    out["node"] = node.stdout.strip()
    try:
        import uvloop

        out["uvloop"] = uvloop.__version__
    except ImportError:
        out["uvloop"] = "not installed"
    return out


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OSError(f"exited with {proc.returncode}: {log.read_text(errors='replace')[-400:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


@dataclass
class Target:
    name: str
    pid: int = 0  # the process whose tree (workers included) is the proxy's cost
    port: int = 0
    api_port: int = 0


@dataclass
class Stack:
    tmp: Path
    hubkit_args: list[str] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    targets: dict[str, Target] = field(default_factory=dict)
    backend_port: int = 0
    ws_port: int = 0
    echo_pid: int = 0

    def spawn(self, cmd: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def _retry(self, start: object, what: str) -> None:
        """Start something that needs a ``free_port()``; again on new ports if one was taken meanwhile."""
        for _attempt in range(5):
            try:
                start()  # type: ignore[operator]
                return
            except OSError as exc:
                if "address already in use" not in str(exc).lower() and "eaddrinuse" not in str(exc).lower():
                    raise
        raise SystemExit(f"{what}: ports kept being taken")

    # -- backends ----------------------------------------------------------------------------------------------
    def start_backends(self) -> None:
        os.chmod(self.tmp, 0o755)  # nginx workers run as an unprivileged user
        (self.tmp / "www").mkdir(mode=0o755, exist_ok=True)
        (self.tmp / "www/1m.bin").write_bytes(os.urandom(1 << 20))

        def nginx() -> None:
            self.backend_port = free_port()
            d = self.tmp / "backend"
            d.mkdir(exist_ok=True)
            site = (
                (HERE / "nginx.conf.tmpl")
                .read_text()
                .replace("{dir}", str(self.tmp))
                .replace("{port}", str(self.backend_port))
            )
            (d / "nginx.conf").write_text(site.replace(f"pid {self.tmp}/nginx.pid", f"pid {d}/nginx.pid"))
            p = self.spawn(["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)], "backend-nginx")
            wait_port(self.backend_port, p, self.tmp / "backend-nginx.log")

        def echo() -> None:
            self.ws_port = free_port()
            p = self.spawn([PY, str(HERE / "ws_echo.py"), str(self.ws_port)], "ws_echo")
            self.echo_pid = p.pid
            wait_port(self.ws_port, p, self.tmp / "ws_echo.log")

        self._retry(nginx, "backend nginx")
        self._retry(echo, "websocket echo")

    # -- targets -----------------------------------------------------------------------------------------------
    def add_target(self, name: str) -> Target:
        backend = f"http://127.0.0.1:{self.backend_port}"
        env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=self.token)
        t = Target(name)
        if name.startswith("chp"):

            def chp() -> None:
                t.port, t.api_port = free_port(), free_port()
                cmd = [chp_bin(), "--ip", "127.0.0.1", "--port", str(t.port), "--api-ip", "127.0.0.1"]
                cmd += ["--api-port", str(t.api_port), "--default-target", backend, "--log-level", "warn"]
                p = self.spawn(cmd, name, env)
                t.pid = p.pid
                wait_port(t.api_port, p, self.tmp / f"{name}.log")
                wait_port(t.port, p, self.tmp / f"{name}.log")

            self._retry(chp, name)
        elif name.startswith("hubkit-proxy"):
            self._hubkit(t, backend, env)
        elif name == "nginx-plane":
            self._retry(lambda: self._hubkit(t, backend, env), "nginx-plane")
        else:
            raise ValueError(name)
        r = httpx.post(
            f"http://127.0.0.1:{t.api_port}/api/routes/ws",
            json={"target": f"http://127.0.0.1:{self.ws_port}"},
            headers={"Authorization": f"token {self.token}"},
        )
        r.raise_for_status()
        self.targets[name] = t
        if name == "nginx-plane":
            time.sleep(0.5)  # the rendered include is reloaded after a 100 ms batch window
        return t

    def _hubkit(self, t: Target, backend: str, env: dict[str, str]) -> None:
        ports_file = self.tmp / f"{t.name}.ports.json"
        cmd = [
            *hubkit_proxy_cmd(),
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            "0",
        ]
        cmd += ["--default-target", backend, "--log-level", "warning", "--ports-file", str(ports_file)]
        cmd += ["--state-file", str(self.tmp / f"{t.name}.jsonl"), *self.hubkit_args]
        if t.name.startswith("hubkit-proxy-w"):
            cmd += ["--workers", t.name.rsplit("w", 1)[1]]
        plane_dir = self.tmp / "plane"
        if t.name == "nginx-plane":
            plane_dir.mkdir(exist_ok=True)
            plane_port = free_port()
            cmd += [
                "--nginx-routes",
                str(plane_dir / "routes.conf"),
                "--nginx-pid",
                str(plane_dir / "nginx.pid"),
            ]
            cmd += ["--nginx-listen", f"127.0.0.1:{plane_port}"]
        p = self.spawn(cmd, t.name, env)
        deadline = time.monotonic() + 30
        while not ports_file.exists():
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{t.name} did not start: {(self.tmp / f'{t.name}.log').read_text()[-500:]}")
            time.sleep(0.05)
        ports = json.loads(ports_file.read_text())
        t.pid, t.port, t.api_port = p.pid, ports["port"], ports["api_port"]
        if t.name == "nginx-plane":
            # nginx serves the traffic: its processes are the data plane's cost (hubkit-proxy only renders)
            workers = max(1, os.cpu_count() or 1)
            (plane_dir / "nginx.conf").write_text(NGINX_MAIN.format(d=plane_dir, workers=workers))
            ngx = self.spawn(
                ["nginx", "-c", str(plane_dir / "nginx.conf"), "-p", str(plane_dir)], "plane-nginx"
            )
            try:
                wait_port(plane_port, ngx, self.tmp / "plane-nginx.log")
            except OSError:
                p.terminate()  # its rendered listen port was taken: start both again on another
                p.wait(10)
                raise
            t.pid, t.port = ngx.pid, plane_port
            t.api_port = ports["api_port"]

    def http_url(self, name: str) -> str:
        port = self.backend_port if name == "direct" else self.targets[name].port
        return f"http://127.0.0.1:{port}"

    def ws_url(self, name: str) -> str:
        port = self.ws_port if name == "direct" else self.targets[name].port
        return f"ws://127.0.0.1:{port}/ws"

    def api(self, name: str) -> str:
        return f"http://127.0.0.1:{self.targets[name].api_port}"

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
