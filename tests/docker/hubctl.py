"""Drive a real ``hubkit`` process (dummy auth, docker spawner, embedded hubkit-proxy) from tests and benchmarks.

Each hub gets its own hub id, so its containers, volumes and routes are told apart from anything else on the
machine and :func:`cleanup_docker` removes exactly them.
"""

from __future__ import annotations

import json
import os
import re
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

import docker
import docker.errors
import httpx
from hubkit.testing.processes import answers, start_hub_process
from hubkit_proxy import launcher

REPO = Path(__file__).resolve().parents[2]
# The venv running the tests has hubkit installed (dev.py test: .venv-test); HUBKIT_VENV_BIN overrides it.
VENV_BIN = Path(os.environ.get("HUBKIT_VENV_BIN", "") or Path(sys.executable).parent)
LABEL_HUB = "org.hubkit.hub"


def docker_client() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def find_test_image(client: docker.DockerClient) -> str | None:
    """The image built by .ci/setup/docker.sh, if present and it has hubkit-singleuser."""
    tag = os.environ.get("HUBKIT_TEST_IMAGE", "")
    tag_file = REPO / ".cache" / "docker" / "image-tag"
    if not tag and tag_file.exists():
        tag = tag_file.read_text().strip()
    tag = tag or "hubkit-test-singleuser:latest"
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return tag if (image.attrs.get("Config") or {}).get("Cmd") == ["hubkit-singleuser"] else None


def _toml(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")


def dump_toml(data: dict[str, Any]) -> str:
    """Enough TOML for these configs: [section] and [section."sub"] tables of scalars, lists and flat dicts."""
    out: list[str] = []

    def table(name: str, tbl: dict[str, Any]) -> None:
        out.append(f"\n[{name}]")
        for k, v in tbl.items():
            if isinstance(v, dict) and not all(isinstance(x, str) for x in v.values()):
                continue
            if isinstance(v, dict):
                out.append(f'"{k}" = {{ ' + ", ".join(f'"{a}" = {_toml(b)}' for a, b in v.items()) + " }")
            else:
                out.append(f'"{k}" = {_toml(v)}')
        for k, v in tbl.items():
            if isinstance(v, dict) and not all(isinstance(x, str) for x in v.values()):
                table(f'{name}."{k}"', v)

    for section, tbl in data.items():
        table(section, tbl)
    return "\n".join(out) + "\n"


@dataclass
class HubProc:
    """One ``hubkit -f`` process behind an embedded hubkit-proxy. Ports are 0 until the first start reports what
    the hub and its proxy bound (no race with other programs); later starts reuse them."""

    workdir: Path
    image: str
    docker_overrides: dict[str, Any] = field(default_factory=dict)
    spawner_overrides: dict[str, Any] = field(default_factory=dict)
    hub_id: str = field(default_factory=lambda: f"hubtest{uuid.uuid4().hex[:8]}")
    port: int = 0
    hub_port: int = 0
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def proxy_pid_file(self) -> Path:
        return self.data_dir / "hubkit-proxy.pid"

    def config(self) -> dict[str, Any]:
        return {
            "hub": {
                "ip": "127.0.0.1",
                "port": self.port,
                "hub_ip": "127.0.0.1",
                "hub_port": self.hub_port,
                "data_dir": str(self.data_dir),
                "db_url": f"sqlite+aiosqlite:///{self.workdir / 'hub.sqlite'}",
                "hub_id": self.hub_id,
                "admin_users": ["admin"],
                "log_level": "INFO",
            },
            "auth": {"backend": "dummy"},
            "spawner": {
                "backend": "docker",
                "poll_interval": 2,
                "http_timeout": 120,
                "start_timeout": 120,
                "concurrent_spawn_limit": 5,
                **self.spawner_overrides,
                "docker": {
                    "image": self.image,
                    "pull_policy": "never",
                    "network_mode": "host",
                    "stop_timeout": 3,
                    **self.docker_overrides,
                },
            },
            "proxy": {
                "backend": "hubkit-proxy",
                "check_interval": 2,
                "hubkit-proxy": {
                    "api_url": f"http://127.0.0.1:{self.api_port}",
                    "pid_file": str(self.proxy_pid_file),
                },
            },
        }

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "hubkit.toml"
        path.write_text(dump_toml(self.config()))
        return path

    def log_path(self, n: int | None = None) -> Path:
        return self.workdir / f"hub{self.starts if n is None else n}.log"

    def log(self) -> str:
        p = self.log_path()
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self, timeout: float = 60) -> float:
        cfg = self.write_config()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBKIT_")}
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"

        def launch() -> subprocess.Popen[bytes]:
            with open(self.log_path(), "ab") as out:
                return subprocess.Popen(
                    [str(VENV_BIN / "hubkit"), "-f", str(cfg)],
                    cwd=self.workdir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        t0 = time.monotonic()
        self.proc = start_hub_process(
            launch,
            self.data_dir,
            self.log,
            lambda: answers(f"{self.url}/hub/health"),
            learn_ports=not self.port,
            on_ports=self._keep_ports,
            limit=timeout,
        )
        return time.monotonic() - t0

    def _keep_ports(self, ports: dict[str, int]) -> None:
        self.port, self.hub_port, self.api_port = ports["port"], ports["hub_port"], ports["api_port"]
        self.write_config()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop_proxy(self) -> None:
        """The embedded proxy outlives the hub by design; tests end it by its pid file."""
        launcher.stop(str(self.proxy_pid_file))

    def token(self, user: str = "admin") -> str:
        out = subprocess.run(
            [str(VENV_BIN / "hubkit"), "-f", str(self.write_config()), "token", user, "--create"],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def routes(self) -> dict[str, Any]:
        secret_file = self.data_dir / "proxy-auth-token"  # written 0600 by the hubkit-proxy plugin
        secret = secret_file.read_text().strip() if secret_file.exists() else ""
        r = httpx.get(
            f"http://127.0.0.1:{self.api_port}/api/routes",
            headers={"Authorization": f"token {secret}"},
            timeout=10,
        )
        r.raise_for_status()
        return dict(r.json())


def cleanup_docker(client: docker.DockerClient, hub_id: str) -> None:
    flt = {"label": f"{LABEL_HUB}={hub_id}"}
    for c in client.containers.list(all=True, filters=flt):
        c.remove(force=True)
    for v in client.volumes.list(filters=flt):
        try:
            v.remove(force=True)
        except docker.errors.APIError:
            pass


def containers(client: docker.DockerClient, hub_id: str, user: str | None = None) -> list[Any]:
    labels = [f"{LABEL_HUB}={hub_id}"] + ([f"org.hubkit.user={user}"] if user else [])
    return list(client.containers.list(all=True, filters={"label": labels}))


@contextmanager
def running(hub: HubProc, client: docker.DockerClient) -> Iterator[HubProc]:
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        hub.stop_proxy()
        cleanup_docker(client, hub.hub_id)


def login(c: httpx.Client, hub: HubProc, user: str) -> None:
    page = c.get("/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf, page.text[:500]
    same = {"Origin": hub.url, "Sec-Fetch-Site": "same-origin"}
    r = c.post(
        "/hub/login",
        data={"username": user, "password": "", "_xsrf": xsrf.group(1)},
        headers=same,
        follow_redirects=False,
    )
    assert r.status_code in (302, 303), r.text[:500]


def progress_events(
    c: httpx.Client, path: str, headers: dict[str, str] | None = None, limit: float = 180
) -> list[dict[str, Any]]:
    """Read the SSE progress stream to its end (ready or failed)."""
    events: list[dict[str, Any]] = []
    with c.stream("GET", path, headers=headers or {}, timeout=limit) as r:
        assert r.status_code == 200, r.read()[:500]
        for line in r.iter_lines():
            if line.startswith("data:"):
                ev = json.loads(line[5:])
                events.append(ev)
                if ev.get("ready") or ev.get("failed"):
                    break
    return events


@dataclass
class Burst:
    seconds: float  # from the first request to every server ready
    statuses: dict[str, int]  # the POST answers
    ready_at: dict[str, float] = field(default_factory=dict)  # seconds after the first request, per user
    watched: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # live progress events per user
    watch_status: list[int] = field(default_factory=list)  # HTTP answers while opening those streams
    failed: dict[str, str] = field(default_factory=dict)  # user -> reason_code (only with tolerate_failures)


async def burst_start(
    base: str,
    headers: dict[str, str],
    users: list[str],
    *,
    limit: float = 600,
    tolerate_failures: bool = False,
) -> Burst:
    """POST every user's server at once and wait until all are ready (or, tolerating failures, settled),
    following every user's progress stream live."""
    import asyncio

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=limit) as c:

        async def watch(user: str, out: list[dict[str, Any]]) -> None:
            # The server row appears once its request is admitted; until then the stream may answer 404.
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                async with c.stream("GET", f"/hub/api/users/{user}/server/progress") as r:
                    burst.watch_status.append(r.status_code)
                    if r.status_code == 200:
                        async for line in r.aiter_lines():
                            if line.startswith("data:"):
                                out.append(json.loads(line[5:]))
                                if out[-1].get("ready") or out[-1].get("failed"):
                                    return
                        return
                await asyncio.sleep(0.1)

        burst = Burst(0.0, {})
        t0 = time.monotonic()
        posts = [asyncio.create_task(c.post(f"/hub/api/users/{u}/server")) for u in users]
        watchers = [asyncio.create_task(watch(u, burst.watched.setdefault(u, []))) for u in users]
        replies = await asyncio.gather(*posts)
        burst.statuses = {u: r.status_code for u, r in zip(users, replies, strict=True)}
        try:
            if any(code not in (201, 202) for code in burst.statuses.values()):
                return burst
            while len(burst.ready_at) + len(burst.failed) < len(users):
                model = (await c.get("/hub/api/users", params={"limit": len(users) + 10})).json()
                servers = {m["name"]: m.get("servers", {}).get("") for m in model if m["name"] in users}
                for u in [u for u, srv in servers.items() if not srv and u not in burst.failed]:
                    r = await c.get(f"/hub/api/users/{u}/server/progress")
                    last = [ln for ln in r.text.splitlines() if ln.startswith("data:")][-1:]
                    burst.failed[u] = json.loads(last[0][5:]).get("reason_code", "?") if last else "?"
                if burst.failed and not tolerate_failures:
                    raise AssertionError(f"spawns failed: {burst.failed}")
                now = time.monotonic() - t0
                for u, srv in servers.items():
                    if srv and srv.get("ready"):
                        burst.ready_at.setdefault(u, now)
                if now > limit:
                    raise TimeoutError(f"not all ready after {limit}s: {servers}")
                await asyncio.sleep(0.25)
            burst.seconds = time.monotonic() - t0 if burst.failed else max(burst.ready_at.values())
            if not burst.failed:
                await asyncio.wait_for(asyncio.gather(*(asyncio.shield(w) for w in watchers)), 30)
        finally:
            for w in watchers:
                w.cancel()
        return burst
