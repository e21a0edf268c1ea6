"""Run the examples/vm hub as a real ``hubkit -f`` process, with the example's config adapted to a test.

The config is *read from* ``examples/vm/hubkit.toml`` and only the machine-specific values (ports, paths,
groups) are replaced, so these tests exercise the file a person copies to their VM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "vm"
# the environment running the tests has every hubkit package (and the `hubkit` command)
VENV_BIN = Path(os.environ.get("HUBKIT_VENV_BIN") or Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """One ``hubkit -f`` process. ``url`` is the public (proxy) address."""

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

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.process_env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_http(f"{self.url}/hub/health", timeout, self, verify=False)

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
