"""A real ``hubkit`` process (dummy auth, ``kubernetes`` spawner, embedded hubkit-proxy) against the real
control plane of ``conftest.py``: the hub signs in with the ServiceAccount of examples/k8s (its Role only), and
its pods run as Docker containers under the real kubelet, on this machine's loopback (host network)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from hubkit.testing.processes import answers, start_hub_process
from hubkit_proxy import launcher
from hubkit_spawn_k8s.testing.helpers import Namespace

VENV_BIN = Path(os.environ.get("HUBKIT_VENV_BIN", "") or Path(sys.executable).parent)


@dataclass
class KubeHub:
    workdir: Path
    ns: Namespace
    image: str
    spawner: dict[str, Any] = field(default_factory=dict)
    k8s: dict[str, Any] = field(default_factory=dict)
    proxy: str = "hubkit-proxy"
    proxy_options: dict[str, Any] = field(default_factory=dict)
    hub_id: str = field(default_factory=lambda: f"k8stest{uuid.uuid4().hex[:6]}")
    # 0 until the first start reports what the hub and its proxy bound (no race for "free" ports); then pinned
    port: int = 0
    hub_port: int = 0
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def external_proxy(self) -> bool:
        return self.proxy_options.get("should_start") is False

    @property
    def url(self) -> str:
        """Where the hub is reached: through its embedded proxy, or straight (external proxies)."""
        return f"http://127.0.0.1:{self.hub_port if self.external_proxy else self.port}"

    def config(self) -> dict[str, Any]:
        data = self.workdir / "data"
        proxy: dict[str, Any] = {"backend": self.proxy, "check_interval": 2}
        if self.proxy == "hubkit-proxy":
            proxy["hubkit-proxy"] = {"api_url": f"http://127.0.0.1:{self.api_port}",
                                     "pid_file": str(data / "hubkit-proxy.pid"), **self.proxy_options}
        return {
            "hub": {"ip": "127.0.0.1", "port": self.port, "hub_ip": "127.0.0.1", "hub_port": self.hub_port,
                    "data_dir": str(data), "db_url": f"sqlite+aiosqlite:///{self.workdir / 'hub.sqlite'}",
                    "hub_id": self.hub_id, "admin_users": ["admin"]},
            "auth": {"backend": "dummy"},
            "spawner": {
                "backend": "kubernetes", "poll_interval": 2, "http_timeout": 120, "start_timeout": 120,
                **self.spawner,
                "kubernetes": {
                    "kubeconfig": str(self.ns.kubeconfig), "namespace": self.ns.name, "image": self.image,
                    "image_pull_policy": "IfNotPresent", "host_network": True, "watch_timeout": 60,
                    # graceful deletion is checked by the package's tests (test_delete_uses_grace_period); this
                    # kubelet finishes a graceful delete only on its periodic sync (10 s and more), which hub-level
                    # tests would only wait for
                    "delete_grace_period": 0, **self.k8s,
                },
            },
            "proxy": proxy,
        }

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "hubkit.toml"
        path.write_text(tomli_w.dumps(self.config()))
        return path

    def log(self) -> str:
        path = self.workdir / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 90) -> None:
        cfg = self.write_config()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"

        def launch() -> subprocess.Popen[bytes]:
            with open(self.workdir / "hub.log", "ab") as out:
                return subprocess.Popen([str(VENV_BIN / "hubkit"), "-f", str(cfg)], cwd=self.workdir, env=env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        self.proc = start_hub_process(
            launch, self.workdir / "data", self.log, lambda: answers(f"{self.url}/hub/health"),
            learn_ports=not (self.port or self.hub_port), on_ports=self._keep_ports, limit=timeout,
            proxy=self.proxy == "hubkit-proxy" and not self.external_proxy,
        )

    def _keep_ports(self, ports: dict[str, int]) -> None:
        self.port = ports.get("port", 0)  # none with an external proxy
        self.hub_port, self.api_port = ports.get("hub_port", 0), ports.get("api_port", 0)
        self.write_config()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop_proxy(self) -> None:
        """The embedded proxy outlives the hub by design; tests end it by its pid file."""
        launcher.stop(str(self.workdir / "data" / "hubkit-proxy.pid"))

    def token(self, user: str) -> str:
        """A token for ``user`` (created if new), minted as ``hubkit token USER --create`` does but in this
        process: a second Python process per test would cost seconds of imports."""
        from hubkit.commands import token
        from hubkit.config.loader import load_settings

        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
        settings = load_settings(self.write_config(), env=env)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            asyncio.run(token(settings, user, ["inherit"], note="tests/k8s", expires_in=None, create=True))
        return out.getvalue().strip().splitlines()[-1]

    def reserve_home(self, user: str) -> None:
        """A world-writable volume for the user's claim: JupyterLab (uid 1000) writes its home."""
        self.ns.cluster.volume_for(self.ns.name, f"hubkit-home-{user}")


@contextmanager
def running(hub: KubeHub) -> Iterator[KubeHub]:
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        hub.stop_proxy()


def progress(c: httpx.Client, user: str, server: str = "", limit: float = 180) -> list[dict[str, Any]]:
    """Read a server's progress stream (SSE) to its end."""
    path = f"/hub/api/users/{user}/servers/{server}/progress" if server else f"/hub/api/users/{user}/server/progress"
    events: list[dict[str, Any]] = []
    with c.stream("GET", path, timeout=limit) as r:
        assert r.status_code == 200, r.read()[:500]
        for line in r.iter_lines():
            if line.startswith("data:"):
                ev = json.loads(line[5:])
                events.append(ev)
                if ev.get("ready") or ev.get("failed"):
                    break
    return events


def wait_until(cond: Any, seconds: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while not (value := cond()):
        assert time.monotonic() < deadline, f"{what} not reached in {seconds:.0f}s"
        time.sleep(0.2)
    return value
