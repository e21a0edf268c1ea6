"""Run a real hub (``hubkit -f <config>``: hubkit-proxy, local spawner, real Jupyter servers) for e2e tests.

Configs start from ``examples/demo/hubkit.toml`` (so the demo config itself is what the tests exercise), with
port 0 everywhere (the hub and its proxy bind what the kernel gives them and report it: no race with other
programs for a "free" port) and a temporary data directory. Everything started is found again from files in that directory
(hub pid, proxy pid file, the local spawner's index) and killed by pid at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubkit.testing.processes import answers, popen_hub, start_hub_process

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "examples" / "demo" / "hubkit.toml"
BIN = Path(sys.executable).parent


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
        self.port = self.hub_port = self.api_port = 0  # known once the first start reports them
        cfg = tomllib.loads(DEMO_CONFIG.read_text())
        cfg = merge(
            cfg,
            {
                "hub": {"port": 0, "hub_port": 0},
                "proxy": {"hubkit-proxy": {"api_url": "http://127.0.0.1:0"}},
            },
        )
        self.config = merge(cfg, overrides or {})
        self.config_path = data_dir / "hubkit.toml"
        self.config_path.write_text(to_toml(self.config))
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _keep_ports(self, ports: dict[str, int]) -> None:
        """After the first start, pin the ports it got: a restarted hub must come back where the running servers
        (JUPYTERHUB_API_URL) and the browsers (the proxy's port) expect it."""
        self.port, self.hub_port, self.api_port = ports["port"], ports["hub_port"], ports["api_port"]
        self.config = merge(
            self.config,
            {
                "hub": {"port": self.port, "hub_port": self.hub_port},
                "proxy": {"hubkit-proxy": {"api_url": f"http://127.0.0.1:{self.api_port}"}},
            },
        )
        self.config_path.write_text(to_toml(self.config))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self, timeout: float = 60) -> None:
        """Start the hub (again): port 0 at first, then on the ports it got (the proxy and the servers point at
        them), tried again while another program's connection holds one for a moment."""
        self.proc = start_hub_process(
            self._launch,
            self.data_dir,
            self.log,
            lambda: answers(f"{self.url}/hub/api"),
            learn_ports=not self.port,
            on_ports=self._keep_ports,
            limit=timeout,
        )

    def _launch(self) -> subprocess.Popen[bytes]:
        return popen_hub(self.config_path, self.data_dir / "hub.log", self.env, cwd=self.data_dir, new_session=True)

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
