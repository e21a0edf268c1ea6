"""Run the examples/vm hub as a real ``hubkit -f`` process, with the example's config adapted to a test.

The config is *read from* ``examples/vm/hubkit.toml`` and only the machine-specific values (ports, paths,
groups) are replaced, so these tests exercise the file a person copies to their VM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hubkit.config import toml_out
from hubkit.testing.processes import (
    ADDRESS_IN_USE,
    HUB_PORTS_FILE,
    PROXY_PORTS_FILE,
    free_port,
    read_ports,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vm"
# the environment running the tests has every hubkit package (and the `hubkit` command)
VENV_BIN = Path(os.environ.get("HUBKIT_VENV_BIN") or Path(sys.executable).parent)


def dump_toml(data: Mapping[str, Any]) -> str:
    return toml_out.dump(dict(data)) + "\n"


def deep_update(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def example_config(**overrides: Any) -> dict[str, Any]:
    with open(EXAMPLE / "hubkit.toml", "rb") as f:
        data = tomllib.load(f)
    for svc in data.get("services", []):  # managed services (the culler) run from the test environment's venv
        svc["command"] = [c.replace("/opt/hubkit/venv/bin/", f"{VENV_BIN}/") for c in svc.get("command", [])]
    return deep_update(data, overrides)


@dataclass
class HubProcess:
    """One ``hubkit -f`` process. ``url`` is the public (proxy) address.

    The hub's own port and the proxy's API port can be 0 (reported back and pinned after the first start);
    the public port is chosen up front when ``public_url`` must name it, and chosen again (``public_url``
    along) if another program takes it before the proxy binds it.
    """

    config: dict[str, Any]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # extra CLI flags, e.g. --ssl-key/--ssl-cert
    user_bin: Path = VENV_BIN  # where servers find hubkit-singleuser (executable by every account)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        h = self.config["hub"]
        tls = "--ssl-cert" in self.args or bool(h.get("ssl_cert"))
        return f"{'https' if tls else 'http'}://{h['ip']}:{h['port']}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def write_config(self) -> Path:
        path = self.workdir / "hubkit.toml"
        path.write_text(dump_toml(self.config))
        return path

    def command(self) -> list[str]:
        return [str(VENV_BIN / "hubkit"), "-f", str(self.write_config()), *self.args]

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
        # like the systemd unit: the servers' venv first on PATH, so "hubkit-singleuser" resolves there
        env["PATH"] = f"{self.user_bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        env.update(self.env)
        return env

    @property
    def data_dir(self) -> Path:
        return Path(self.config["hub"]["data_dir"])

    def _logs(self) -> str:
        proxy_log = self.data_dir / "hubkit-proxy.log"
        return self.log() + (proxy_log.read_text(errors="replace") if proxy_log.exists() else "")

    def start(self, timeout: float = 60) -> None:
        for attempt in range(5):
            seen = len(self._logs())
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    cwd=self.workdir,
                    env=self.process_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_http(f"{self.url}/hub/health", timeout, self, verify=False)
                break
            except (RuntimeError, TimeoutError):
                if attempt == 4 or ADDRESS_IN_USE not in self._logs()[seen:].lower():
                    raise
                self.stop()
                self._move_public_port()
        self._pin_ports()

    def _move_public_port(self) -> None:
        """The public port chosen for this hub was taken by another program: take another (and public_url)."""
        h = self.config["hub"]
        old, new = h["port"], free_port()
        h["port"] = new
        if h.get("public_url"):
            h["public_url"] = h["public_url"].replace(f":{old}", f":{new}")

    def _pin_ports(self) -> None:
        """Ports 0 became real ports: write them into the config so a restart comes back on them."""
        h = self.config["hub"]
        got = read_ports(self.data_dir / HUB_PORTS_FILE)
        for key in ("port", "hub_port"):
            if got.get(key):
                h[key] = got[key]
        api = read_ports(self.data_dir / PROXY_PORTS_FILE).get("api_port")
        proxy = self.config.get("proxy", {}).get("hubkit-proxy")
        if api and isinstance(proxy, dict):
            proxy["api_url"] = f"http://127.0.0.1:{api}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_http(url: str, timeout: float, hub: HubProcess | None = None, *, verify: bool = True) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if hub is not None and hub.proc is not None and hub.proc.poll() is not None:
            raise RuntimeError(f"hub exited with {hub.proc.returncode}:\n{hub.log()[-4000:]}")
        try:
            r = httpx.get(url, timeout=2, verify=verify)
            if r.status_code < 500:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(
        f"{url} not up after {timeout}s ({last!r})" + (f"\n{hub.log()[-4000:]}" if hub else "")
    )


def kill_user_processes(uids: list[int]) -> None:
    """Servers outlive the hub by design; tests end their test accounts' processes (by pid) so userdel works."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid in uids:
                os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def running_hub(hub: HubProcess) -> Iterator[HubProcess]:
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
