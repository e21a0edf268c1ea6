"""Three hub replicas (real ``hubkit`` processes, one config, one data dir, one PostgreSQL database) behind one
hubkit-proxy whose default route names all three, for the chaos test of this folder.

The replicas share the data dir as ``hubkit --workers`` does (cookie secret, the test spawner's process labels);
each gets its own port through ``HUBKIT_HUB__HUB_PORT``: 0 on its first start (read back from ``hub.ports.json``),
then pinned, so a replica killed with ``-9`` comes back where the proxy's route names it. The proxy is run by the
test (``should_start = false`` in the hub config), so killing a replica never touches it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hubkit.builtin.standin_servers import labelled_processes
from hubkit.storage.locks import DUTY_LOCKS
from hubkit.testing.processes import launch_hub_cli, read_ports, terminate

PORTS_FILE = "hub.ports.json"


@dataclass
class Replica:
    index: int
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    healthy: bool = False  # answered /hub/health since its latest start

    @property
    def name(self) -> str:
        return f"r{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ChaosHub:
    tmp: Path
    db_url: str
    start_delay: float
    spawn_limit: int
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    replicas: list[Replica] = field(default_factory=list)
    proxy: subprocess.Popen[bytes] | None = None
    public_port: int = 0
    api_port: int = 0

    @property
    def data(self) -> Path:
        return (self.tmp / "data").resolve()

    @property
    def config(self) -> Path:
        return self.tmp / "hubkit.toml"

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    # ---------------------------------------------------------------------------------------------- proxy
    def start_proxy(self) -> None:
        pdir = self.tmp / "proxy"
        pdir.mkdir(exist_ok=True)
        log = pdir / "proxy.log"
        cmd = [
            sys.executable, "-m", "hubkit_proxy",
            "--ip", "127.0.0.1", "--port", "0", "--api-ip", "127.0.0.1", "--api-port", "0",
            "--ports-file", str(pdir / "ports.json"), "--state-file", str(pdir / "routes.jsonl"),
            "--health-check-path", "/hub/health", "--health-check-interval", "250",
            "--health-check-timeout", "1000", "--fail-timeout", "3000",
        ]  # fmt: skip
        with log.open("ab") as out:
            self.proxy = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**_env(), "CONFIGPROXY_AUTH_TOKEN": self.token}
            )
        deadline = time.monotonic() + 60
        while not (ports := read_ports(pdir / "ports.json")):
            assert self.proxy.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "hubkit-proxy did not report its ports"
            time.sleep(0.05)
        self.public_port, self.api_port = ports["port"], ports["api_port"]

    def proxy_api(self, method: str, path: str, body: object = None) -> httpx.Response:
        return httpx.request(
            method,
            f"http://127.0.0.1:{self.api_port}/api/routes{path}",
            json=body,
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
        )

    def route_default_to_every_replica(self) -> None:
        urls = [r.url for r in self.replicas]
        r = self.proxy_api("POST", "/", {"target": urls[0], "targets": urls})
        assert r.status_code == 201, r.text

    # ---------------------------------------------------------------------------------------------- replicas
    def write_config(self) -> None:
        self.config.write_text(
            f"""
[hub]
ip = "127.0.0.1"
port = {self.public_port}
hub_ip = "127.0.0.1"
hub_port = 0
data_dir = "{self.data}"
db_url = "{self.db_url}"
admin_users = ["boss"]
log_level = "INFO"

[auth]
backend = "dummy"

[spawner]
backend = "test"
concurrent_spawn_limit = {self.spawn_limit}
poll_interval = 5

[spawner.test]
mode = "process"
start_delay = {self.start_delay}

[proxy]
backend = "hubkit-proxy"
check_interval = 5

[proxy.hubkit-proxy]
should_start = false
api_url = "http://127.0.0.1:{self.api_port}"
auth_token = "{self.token}"
"""
        )

    def upgrade(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hubkit.cli", "-f", str(self.config), "db", "upgrade"],
            check=True,
            capture_output=True,
            timeout=120,
            env=_env(),
        )

    def add(self) -> Replica:
        rep = Replica(len(self.replicas), self.tmp / f"r{len(self.replicas)}.log")
        self.replicas.append(rep)
        return rep

    def start(self, rep: Replica) -> float:
        """Start ``rep``: on port 0 the first time (one at a time: the shared ports file tells its port), on its
        pinned port after that (retried while a lingering socket holds it). Returns the seconds until healthy."""
        with rep.log.open("a") as fh:
            fh.write(f"\nchaos-replica-start {rep.starts}\n")
        first = rep.port == 0
        got: dict[str, int] = {}
        if first:
            (self.data / PORTS_FILE).unlink(missing_ok=True)
        port = 0 if first else rep.port
        proc, took = launch_hub_cli(
            self.config,
            rep.log,
            {**_env(), "HUBKIT_HUB__HUB_PORT": str(port)},
            health=lambda: f"http://127.0.0.1:{got.get('hub_port', port)}/hub/health",
            data_dir=self.data,
            learn_ports=first,
            on_ports=got.update,
            proxy=False,
            limit=90,
        )
        rep.proc = proc
        rep.healthy = True
        rep.starts += 1
        if first:
            rep.port = got["hub_port"]
        return took

    def kill9(self, rep: Replica) -> None:
        assert rep.proc is not None
        rep.healthy = False
        rep.proc.send_signal(signal.SIGKILL)
        rep.proc.wait(10)

    def stop_all(self) -> None:
        for rep in self.replicas:
            if rep.proc is not None:
                terminate(rep.proc)
        if self.proxy is not None:
            terminate(self.proxy)

    def by_pid(self, pid: int) -> Replica | None:
        return next((r for r in self.replicas if r.proc is not None and r.proc.pid == pid), None)


def _env() -> dict[str, str]:
    return dict(os.environ)


def duty_holder_pids(cluster: Any, database: str) -> dict[int, int]:
    """hub pid -> how many duty leases it holds now (``pg_locks``, as docs/deploy-ha.md says)."""
    held: dict[int, int] = {}
    for _key, app in cluster.advisory_holders(database, DUTY_LOCKS):
        tail = app.strip().rsplit(":", 1)[-1]
        if tail.isdigit():
            held[int(tail)] = held.get(int(tail), 0) + 1
    return held


def server_processes(data_dir: Path) -> dict[int, str]:
    """pid -> user of every live test-spawner server process labelled with this hub (``--hub=hubkit@<data dir>``:
    every replica's, since they share the data dir)."""
    found: dict[int, str] = {}
    for pid in labelled_processes(f"hubkit@{data_dir}").values():
        try:
            env = dict(kv.split(b"=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        found[pid] = env.get(b"JUPYTERHUB_USER", b"?").decode()
    return found


def rows(cluster: Any, database: str, sql: str) -> list[list[str]]:
    out = cluster.psql(sql, database)
    return [line.split("|") for line in out.splitlines() if line.strip()]


def state_json(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

