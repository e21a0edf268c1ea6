"""Run a real hub (``hubkit -f <config>``: hubkit-proxy, local spawner, real Jupyter servers) for e2e tests.

Configs start from ``examples/demo/hubkit.toml`` (so the demo config itself is what the tests exercise), with
free ports and a temporary data directory. Everything started is found again from files in that directory
(hub pid, proxy pid file, the local spawner's index) and killed by pid at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "examples" / "demo" / "hubkit.toml"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for hub configs: nested tables, scalars, lists, inline tables for dicts of scalars."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in data.items():
        key = k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)
        if isinstance(v, dict) and (not v or any(isinstance(x, dict) for x in v.values()) or prefix == ""):
            tables.append((f"{prefix}{key}", v))
        else:
            lines.append(f"{key} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        out += f"\n[{name}]\n" + to_toml(table, name + ".")
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Hub:
    def __init__(self, data_dir: Path, overrides: dict[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        cfg = tomllib.loads(DEMO_CONFIG.read_text())
        cfg = merge(
            cfg,
            {
                "hub": {"port": self.port, "hub_port": self.hub_port},
                "proxy": {"hubkit-proxy": {"api_url": f"http://127.0.0.1:{self.api_port}"}},
            },
        )
        self.config = merge(cfg, overrides or {})
        self.config_path = data_dir / "hubkit.toml"
        self.config_path.write_text(to_toml(self.config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self._admin_token: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 60, tries: int = 5) -> None:
        """Start the hub (again). Its ports were free when picked, but another program's connection may take
        one for a moment (a restart needs the same ports: the proxy points at them), so an address in use means
        another try on the same ports a second later."""
        for attempt in range(tries):
            seen = len(self.log()), len(self.proxy_log())
            try:
                self._start_once(timeout)
                return
            except AssertionError:
                fresh = (self.log()[seen[0] :] + self.proxy_log()[seen[1] :]).lower()
                if attempt == tries - 1 or "address already in use" not in fresh:
                    raise
                time.sleep(1)

    def proxy_log(self) -> str:
        p = self.data_dir / "hubkit-proxy.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def _start_once(self, timeout: float) -> None:
        log = (self.data_dir / "hub.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "hubkit"), "-f", str(self.config_path)],
            cwd=self.data_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"hub did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        p = self.data_dir / "hub.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def token(self, user: str) -> str:
        out = subprocess.run(
            [str(BIN / "hubkit"), "-f", str(self.config_path), "token", "--create", user],
            cwd=self.data_dir,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    @property
    def admin(self) -> httpx.Client:
        if self._admin_token is None:
            self._admin_token = self.token("admin")
        return httpx.Client(
            base_url=f"{self.url}/hub/api",
            headers={"Authorization": f"token {self._admin_token}"},
            timeout=30,
        )

    def start_server(self, user: str, timeout: float = 90) -> dict[str, Any]:
        with self.admin as api:
            api.post(f"/users/{user}")  # create if missing (409 when it exists)
            r = api.post(f"/users/{user}/server")
            assert r.status_code in (201, 202), r.text
            return self.wait_server(user, ready=True, timeout=timeout)

    def wait_server(self, user: str, *, ready: bool, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        model: dict[str, Any] = {}
        with self.admin as api:
            while time.monotonic() < deadline:
                model = api.get(f"/users/{user}").json()
                srv = model.get("servers", {}).get("")
                if ready and srv and srv.get("ready"):
                    return dict(srv)
                if not ready and not srv:
                    return {}
                time.sleep(0.1)
        raise AssertionError(
            f"server of {user} not {'ready' if ready else 'gone'}: {model}\n{self.log()[-3000:]}"
        )

    def spawner_pids(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for f in (self.data_dir / "local-spawner").glob("*.json"):
            out.update(json.loads(f.read_text() or "{}"))
        return out

    def cleanup(self) -> None:
        """Kill (by pid) the hub, the proxy it launched and every user server the spawner started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for st in self.spawner_pids().values():
            pg = st.get("pgid")
            if isinstance(pg, int) and pg > 1:
                try:
                    os.killpg(pg, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        pidfile = self.data_dir / "hubkit-proxy.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _require(cond: bool, reason: str) -> None:
    """Skip when a real component is missing locally; fail in CI (CI=true)."""
    if cond:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required component missing in CI: {reason}")
    pytest.skip(reason)


def login(page: Any, hub: Hub, name: str, path: str = "/hub/home") -> None:
    page.goto(hub.url + path)
    page.fill("#username", name)
    page.click("#login-submit")
    page.wait_for_load_state()
