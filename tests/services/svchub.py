"""A real hub for the services tests: ``hubkit -f hubkit.toml`` as its own process, hubkit-proxy in front, the
stand-in spawner in process mode, and whatever ``[[services]]`` tables the test writes into the file.

Everything it starts is found again by pid (the hub's, the proxy's pid file, stand-in servers by this hub's
own label) and killed at the end; managed services stop with the hub, and are checked to have.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hubkit.testing.processes import answers, popen_hub, start_hub_process

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent

HUB_TOML = """\
[hub]
ip = "127.0.0.1"
port = {port}
hub_ip = "127.0.0.1"
hub_port = {hub_port}
data_dir = "{data_dir}"
db_url = "sqlite:///hubkit.sqlite"
hub_id = "{hub_id}"
admin_users = ["admin"]

[auth]
backend = "dummy"

[spawner]
backend = "stand-in"
poll_interval = 2

[spawner.stand-in]
mode = "process"

[proxy]
backend = "hubkit-proxy"
check_interval = 2

[proxy.hubkit-proxy]
api_url = "http://127.0.0.1:{api_port}"
"""


ADMIN_TOKEN = secrets.token_hex(16)
ADMIN_SERVICE = f"""
[[services]]
name = "test-admin"
admin = true
api_token = "{ADMIN_TOKEN}"
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond: Any, within: float, what: str, log: Any = None) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"{what}: not within {within}s" + (f"\n--- hub log ---\n{log()[-6000:]}" if log else "")
    )


class ServicesHub:
    def __init__(self, data_dir: Path, services_toml: str) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.services_toml = services_toml
        # port 0 everywhere until the first start reports what the hub and its proxy bound; then pinned there
        self.port = self.hub_port = self.api_port = 0
        self.hub_id = f"svc-{secrets.token_hex(4)}"
        self.config_path = data_dir / "hubkit.toml"
        self._write_config()
        self.proc: subprocess.Popen[bytes] | None = None
        self.service_pids: set[int] = set()

    def _write_config(self) -> None:
        self.config_path.write_text(
            HUB_TOML.format(
                port=self.port,
                hub_port=self.hub_port,
                api_port=self.api_port,
                data_dir=self.data_dir,
                hub_id=self.hub_id,
            )
            + ADMIN_SERVICE
            + self.services_toml
        )

    def _pin_ports(self, ports: dict[str, int]) -> None:
        """A restarted hub must come back where its proxy and managed services expect it."""
        self.port, self.hub_port, self.api_port = ports["port"], ports["hub_port"], ports["api_port"]
        self._write_config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
        env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        env["HUBKIT_PLUGINS"] = "proxy"  # the one plugin these hubs use: a faster start on a busy machine
        return env

    def start(self, within: float = 60) -> None:
        """Start the hub: port 0 at first, then on the ports it got (restarts in these tests need them), tried
        again while another program's connection holds one for a moment."""

        def launch() -> subprocess.Popen[bytes]:
            log = self.data_dir / "hub.log"
            return popen_hub(self.config_path, log, self.env, cwd=self.data_dir, new_session=True)

        self.proc = start_hub_process(
            launch,
            self.data_dir,
            self.log,
            lambda: answers(f"{self.url}/hub/api"),  # through the proxy
            learn_ports=not self.port,
            on_ports=self._pin_ports,
            limit=within,
        )

    def log(self) -> str:
        p = self.data_dir / "hub.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def admin(self) -> httpx.Client:
        """The API as the ``test-admin`` service (an admin service with a configured token: no CLI round trip)."""
        return httpx.Client(base_url=self.api, headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=30)

    def service(self, name: str) -> dict[str, Any]:
        with self.admin() as api:
            r = api.get(f"/services/{name}")
            assert r.status_code == 200, r.text
            model = r.json()
        if model.get("pid"):
            self.service_pids.add(model["pid"])
        return dict(model)

    def running_pid(self, name: str, within: float = 30, *, not_pid: int | None = None) -> int:
        """The pid of a managed service once the hub reports it running (and, after a restart of the hub, once
        the new hub has started its own: ``not_pid``)."""

        def running() -> Any:
            m = self.service(name)
            return m.get("pid") not in (0, None, not_pid) and m["hubkit_process"]["state"] == "running" and m

        return int(wait_for(running, within, f"service {name} running", self.log)["pid"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def stop_servers(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with self.admin() as api:
            for user in api.get("/users").json():
                for name in user.get("servers", {}):
                    path = f"/users/{user['name']}/server" + (f"s/{name}" if name else "")
                    api.delete(path)

    def cleanup(self) -> None:
        """Stop servers, then the hub; kill by pid whatever is left (proxy, stand-in servers, services)."""
        try:
            self.stop_servers()
        except httpx.HTTPError:
            pass
        self.stop()
        from hubkit.builtin.standin_servers import labelled_processes

        for pid in labelled_processes(self.hub_id).values():
            os.killpg(pid, signal.SIGKILL)
        for pid in self.service_pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
        pidfile = self.data_dir / "hubkit-proxy.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


def services_log_lines(log: str, name: str) -> list[str]:
    return re.findall(rf"\[{re.escape(name)}\] (.*)", log)
