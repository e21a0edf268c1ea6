"""Run an ``examples/oauth-*`` hub as a real ``hubkit -f`` process: hubkit-proxy launched by the hub, the local
spawner, JupyterLab through ``hubkit-singleuser``.

The config is read from the example's ``hubkit.toml``; only what belongs to this machine is replaced (ports,
``/var/lib/hubkit``, public URL, where the provider is and the client it registered), so the tests exercise
the file a person copies. Secrets come from the environment, as the examples' READMEs say. Everything
started is found again from files in the data directory and stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hubkit.config import toml_out
from hubkit.testing.processes import start_hub_cli, terminate, wait_bound_ports, wait_health
from hubkit_proxy import launcher

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_DATA_DIR = "/var/lib/hubkit"


def _relocate(value: Any, data_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace(EXAMPLE_DATA_DIR, data_dir)
    if isinstance(value, dict):
        return {k: _relocate(v, data_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocate(v, data_dir) for v in value]
    return value


def example_config(example: str) -> dict[str, Any]:
    with open(EXAMPLES / example / "hubkit.toml", "rb") as f:
        return tomllib.load(f)


@dataclass
class ExampleHub:
    example: str
    workdir: Path
    port: int  # public (hubkit-proxy); the provider knows <public_url>/hub/oauth_callback
    auth: dict[str, Any]  # [auth.<backend>] values for this machine's provider
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # keys a how-to adds, by section
    hub_port: int = 0  # the hub and its proxy bind port 0 and report what they got (see start)
    proxy_api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """The hub's own API URL (not through the proxy), as a service on the hub's machine uses it."""
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "hubkit.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = _relocate(example_config(self.example), str(self.data_dir))
        data["hub"].update(port=self.port, hub_port=self.hub_port, public_url=self.url)
        backend = data["auth"]["backend"]
        data["auth"][backend] = {**data["auth"][backend], **self.auth}
        data["proxy"].setdefault("hubkit-proxy", {})["api_url"] = f"http://127.0.0.1:{self.proxy_api_port}"
        for section, values in self.extra.items():
            data.setdefault(section, {}).update(values)
        return data

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(toml_out.dump(self.config()) + "\n")
        self.proc, t0 = start_hub_cli(self.config_path, self.log_path, self.env)
        ports = wait_bound_ports(self.data_dir, self.proc, limit=90)
        self.hub_port, self.proxy_api_port = ports["hub_port"], ports["api_port"]
        self.config_path.write_text(toml_out.dump(self.config()) + "\n")  # pinned, as a restart would need
        wait_health(f"{self.url}/hub/health", self.proc, t0, limit=90)  # through the proxy the hub started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``hubkit -f <config> ARGS`` with the hub's environment (its secrets included)."""
        return subprocess.run(
            [sys.executable, "-m", "hubkit.cli", "-f", str(self.config_path), *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **self.env},
        )

    def token(self, user: str, *scopes: str) -> str:
        done = self.cli("token", user, *(["--scopes", *scopes] if scopes else []))
        assert done.returncode == 0, f"hubkit token {user} failed:\n{done.stderr}"
        return done.stdout.strip().splitlines()[-1]

    def start_server(self, token: str, user: str, timeout: float = 120) -> dict[str, Any]:
        headers = {"Authorization": f"token {token}"}
        with httpx.Client(base_url=self.api, headers=headers, timeout=30) as api:
            answer = api.post(f"/users/{user}/server")
            assert answer.status_code in (201, 202), answer.text
            return dict(wait_until(lambda: _ready_server(api, user), timeout, what=f"{user}'s server"))

    def stop(self) -> None:
        """The hub (SIGTERM), then any server the local spawner started and the proxy, by pid."""
        if self.proc is not None:
            terminate(self.proc, grace=20)
        for index in (self.data_dir / "local-spawner").glob("*.json"):
            for state in json.loads(index.read_text() or "{}").values():
                pgid = state.get("pgid")
                if isinstance(pgid, int) and pgid > 1:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
        launcher.stop(str(self.data_dir / "hubkit-proxy.pid"))


def _ready_server(api: httpx.Client, user: str) -> dict[str, Any] | None:
    server = api.get(f"/users/{user}").json().get("servers", {}).get("")
    return server if server and server.get("ready") else None


def wait_until(probe: Any, timeout: float, *, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not there within {timeout} s")
