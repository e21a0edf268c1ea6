"""A real hub for the hardening tests: the ``hubkit`` CLI as a process, hubkit-proxy in front, SQLite or a real
PostgreSQL behind it. Every request of a test goes through the proxy's public port, as a browser's would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hubkit.testing.processes import cli_token, start_hub_port_zero
from hubkit_proxy import launcher

HUB_ENV = {"HUBKIT_PLUGINS": "proxy"}
PASSWORD = "correct horse"


class HardHub:
    def __init__(self, tmp: Path, db_url: str, extra: str = "") -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.public = self.hub_port = self.api_port = 0
        self.config = tmp / "hubkit.toml"
        self.log = tmp / "hub.log"

    def _write_config(self) -> None:
        self.config.write_text(
            f"""
[hub]
port = {self.public}
hub_port = {self.hub_port}
data_dir = "{self.tmp / "data"}"
db_url = "{self.db_url}"
admin_users = ["boss"]
login_rate_limit = 5
login_rate_limit_per_address = 40
# the proxy connects from 127.0.0.1; test clients use other loopback addresses (127.0.0.2, ...)
trusted_proxies = ["127.0.0.1/32"]
{self.extra}

[auth]
backend = "dummy"

[auth.dummy]
password = "{PASSWORD}"

[spawner]
backend = "test"
poll_interval = 2

[proxy]
backend = "hubkit-proxy"
check_interval = 2

[proxy.hubkit-proxy]
api_url = "http://127.0.0.1:{self.api_port}"
"""
        )

    def start(self) -> HardHub:
        """Start on port 0 everywhere (the hub and its proxy report the ports they got: no race with other
        programs for a free port); the ports are then written into the config, as a restart would need them."""
        data = self.tmp / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.public = self.hub_port = self.api_port = 0
        self._write_config()
        try:
            self.proc, ports = start_hub_port_zero(self.config, self.log, HUB_ENV, data_dir=data, proxy=True)
            self.public, self.hub_port, self.api_port = ports["port"], ports["hub_port"], ports["api_port"]
            self._write_config()
            self._wait_proxy()
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"hub did not start: {exc}\n{self.log_text()[-3000:]}") from None
        return self

    def _wait_proxy(self, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/hub/api/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the proxy never routed to the hub")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public}"

    def token(self, user: str = "boss") -> str:
        return cli_token(self.config, user, HUB_ENV)

    def client(self, source: str = "127.0.0.2", **kw: Any) -> httpx.Client:
        """A client that connects from ``source`` (any 127.x address works on Linux), so that the proxy
        (127.0.0.1, trusted) and the clients (not trusted) are different hosts to the hub."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=30, **kw)

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        with self.client() as c:
            return c.request(method, f"/hub/api{path}", headers=headers, **kw)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def server_env(self, boss: str, user: str, *, start: bool = True) -> dict[str, str]:
        """Start ``user``'s server (unless started) and read its credentials where a real server has them: its
        environment (the process spawner of ``process_hub``)."""
        if start:
            assert self.api("POST", f"/users/{user}/server", boss).status_code in (201, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{user}", boss).json()["servers"].get("", {})
            if server.get("ready"):
                pid = int(server["state"]["pid"])
                raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                return dict(item.decode().split("=", 1) for item in raw if b"=" in item)
            time.sleep(0.2)
        raise AssertionError(f"{user}'s server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        launcher.stop(str(self.tmp / "data" / "hubkit-proxy.pid"))


def login(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    """The login form, as a browser submits it (XSRF field from the page, anchor cookie kept)."""
    page = client.get("/hub/login")
    m = re.search(r'name="_xsrf" value="([0-9a-f]+)"', page.text)
    assert m, page.text[:500]
    return client.post("/hub/login", data={"username": name, "password": password, "_xsrf": m.group(1)})


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes or the response is complete."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before a huge request is fully sent
        s.settimeout(timeout)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"content-length: 0" not in out.lower():
                    head, _, body = out.partition(b"\r\n\r\n")
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:") and len(body) >= int(
                            line.split(b":")[1]
                        ):
                            return out
        except (ConnectionResetError, TimeoutError):
            pass
    return out


def python() -> str:
    return sys.executable


def env() -> dict[str, str]:
    return {**os.environ, **HUB_ENV}
