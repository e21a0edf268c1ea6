"""Hub replicas for these tests: real ``hubkit`` processes with the same settings on one PostgreSQL database,
each on a port of its own (port 0, reported back) and with a data directory of its own."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from hubkit.testing.processes import cli_token, hub_api, machine_is_overloaded, start_hub_port_zero

HUB_ENV = {"HUBKIT_PLUGINS": ""}  # the core alone


class Replica:
    def __init__(self, tmp: Path, name: str, db_url: str, extra: str = "") -> None:
        self.name = name
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "hubkit.toml"
        self.log = self.dir / "hub.log"
        self.db_url = db_url
        self.extra = extra
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        self.config.write_text(
            f"""
[hub]
port = {self.port}
data_dir = "{self.dir / "data"}"
db_url = "{self.db_url}"
admin_users = ["boss"]
log_level = "INFO"
{self.extra}

[spawner]
backend = "test"
poll_interval = 2

[spawner.test]
mode = "process"
start_delay = 2

[proxy]
backend = "none"
check_interval = 2
"""
        )

    def start(self) -> Replica:
        self.port = 0
        self._write_config()
        try:
            self.proc, ports = start_hub_port_zero(self.config, self.log, HUB_ENV, data_dir=self.dir / "data")
        except AssertionError as exc:
            raise AssertionError(f"replica {self.name} did not start: {exc}\n{self.log_text()[-3000:]}") from None
        self.port = ports["port"]
        self._write_config()
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, user: str = "boss") -> str:
        return cli_token(self.config, user, HUB_ENV)

    def api(self, token: str, method: str, path: str, body: object = None) -> httpx.Response:
        return hub_api(self.port, token, method, path, body)


def seconds_until(check: Callable[[], bool], limit: float = 10.0, step: float = 0.01) -> float:
    """Seconds until ``check()`` holds (polled every ``step``); fails after ``limit``."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < limit, f"not within {limit} s"
        time.sleep(step)
    return time.monotonic() - t0


def status(replica: Replica, token: str, path: str = "/user") -> int:
    return replica.api(token, "GET", path).status_code


def json_of(r: httpx.Response) -> Any:
    assert r.status_code < 300, (r.status_code, r.text)
    return r.json()


def assert_within(took: float, limit: float, overloaded_limit: float, what: str) -> None:
    """``took`` < ``limit``; on a machine so loaded that the load average exceeds twice the CPU count, wall time
    measures the neighbours, so ``overloaded_limit`` (still below what only a missing notice would explain)."""
    print(f"{what}: {took:.3f} s")
    if took < limit:
        return
    assert machine_is_overloaded() and took < overloaded_limit, f"{what}: {took:.3f} s (limit {limit} s)"
