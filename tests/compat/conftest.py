"""A live hub for the compatibility checks of compat section E: real sockets, the real web app under
uvicorn, hubkit-proxy in front (when asked), and a small local-process spawner that runs whatever command
the test gives it (e.g. the stock ``jupyterhub-singleuser`` from PyPI)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hubkit.interfaces import (
    Endpoint,
    ExitStatus,
    JSONDict,
    OptionsForm,
    ReconcileReport,
    ServerSpec,
    SpawnContext,
    StartResult,
    UserInfo,
)
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import BackendRegistry, EmptyConfig, HubInfo
from hubkit.testing.processes import bound_socket

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """For the single-user servers LocalCmdSpawner starts: they bind the port they are given (port_retries=0)
    and cannot report one of their own choosing."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCmdSpawner:
    """Runs ``spec.cmd`` as a child process in its own session; just enough for compatibility tests."""

    def __init__(self, config: EmptyConfig, hub: HubInfo) -> None:
        self.data_dir = Path(hub.data_dir)
        self.procs: dict[int, asyncio.subprocess.Process] = {}

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        for pid in list(self.procs):
            self._kill(pid)

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return None

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        return {}

    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        port = free_port()
        home = self.data_dir / "home" / spec.user.name
        home.mkdir(parents=True, exist_ok=True)
        (home / "x.txt").write_text("hello from alice's server\n")
        env = spec.env_with_url("127.0.0.1", port)
        env.update(
            PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
            HOME=str(home),
            LANG="C.UTF-8",
            COMPAT_DUMP=str(home / f"env-{spec.server_name or 'default'}.txt"),
        )
        log = open(home / f"server-{spec.server_name or 'default'}.log", "ab")  # noqa: SIM115, ASYNC230
        proc = await asyncio.create_subprocess_exec(
            *spec.cmd,
            env=env,
            cwd=str(home),
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs[proc.pid] = proc
        state = {"pid": proc.pid, "port": port}
        await ctx.save_state(state)
        return StartResult(Endpoint(f"http://127.0.0.1:{port}"), state)

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        proc = self.procs.get(int(state.get("pid", 0)))
        if proc is None or proc.returncode is not None:
            return ExitStatus(code=proc.returncode if proc else None, reason="process exited")
        return None

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        pid = int(state.get("pid", 0))
        if not pid:
            return
        self._kill(pid)
        proc = self.procs.pop(pid, None)
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                await proc.wait()

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        path = self.data_dir / "home" / spec.user.name / f"server-{spec.server_name or 'default'}.log"
        return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []

    async def reconcile(self, known: Any, *, remove_orphans: bool) -> ReconcileReport:
        return ReconcileReport()


class CompatPlugin:
    __name__ = "compat_local_spawner"

    @hookimpl
    def hubkit_register_spawners(self, registry: BackendRegistry[Any]) -> None:
        registry.add("compat-local", LocalCmdSpawner, description="test: runs spec.cmd locally")


@dataclass
class LiveHub:
    hub: Any
    public: str  # what browsers use (the proxy, or the hub itself)
    hub_url: str
    api: str
    admin_token: str
    data_dir: Path

    async def token(self, user: str, scopes: list[str], *, admin: bool = False) -> str:
        from hubkit.auth.tokens import issue_token
        from hubkit.services.users import new_user
        from hubkit.storage.orm import User
        from sqlalchemy import select

        async with self.hub.db() as s:
            u = (await s.execute(select(User).where(User.name == user))).scalar_one_or_none()
            if u is None:
                u = new_user(user, admin=admin)
                s.add(u)
                await s.flush()
            secret, _ = await issue_token(s, user_id=u.id, scopes=scopes)
            await s.commit()
        return secret

    async def service_token(self, name: str, scopes: list[str]) -> str:
        """A token of a hub service (like JupyterHub's culler service) holding exactly ``scopes``."""
        from hubkit.auth.tokens import issue_token
        from hubkit.storage.orm import Service
        from sqlalchemy import select

        async with self.hub.db() as s:
            svc = (await s.execute(select(Service).where(Service.name == name))).scalar_one_or_none()
            if svc is None:
                svc = Service(name=name, scopes=scopes, admin=False, url="", display=False, info={})
                s.add(svc)
            svc.scopes = scopes
            await s.flush()
            secret, _ = await issue_token(s, service_id=svc.id, scopes=scopes)
            await s.commit()
        return secret


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def live_hub_factory(
    tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Callable[..., Awaitable[LiveHub]]]:
    import uvicorn
    from hubkit.config.models import Settings
    from hubkit.runtime.app import create_app
    from hubkit.runtime.hub import Hub
    from hubkit.storage.orm import Server, ServerStatus, User

    started: list[tuple[Any, Any, Any, Path]] = []

    async def make(
        *,
        proxy: bool = False,
        spawner: str = "test",
        cmd: list[str] | None = None,
        culler: dict[str, Any] | None = None,
        spawner_config: dict[str, Any] | None = None,
    ) -> LiveHub:
        data = tmp_path / f"hub{len(started)}"
        sock = bound_socket()  # handed to uvicorn itself: no other program can take the hub's port
        hub_port = int(sock.getsockname()[1])
        raw: dict[str, Any] = {
            "hub": {
                "data_dir": str(data),
                "db_url": "sqlite:///hub.sqlite",
                "ip": "127.0.0.1",
                "port": 0 if proxy else hub_port,  # the embedded proxy binds port 0 and reports it
                "hub_ip": "127.0.0.1",
                "hub_port": hub_port,
                "hub_connect_url": f"http://127.0.0.1:{hub_port}",
            },
            "spawner": {"backend": spawner, "cmd": cmd or [], "http_timeout": 90, "start_timeout": 60},
            "proxy": {"backend": "hubkit-proxy" if proxy else "none", "check_interval": 5},
            "culler": culler or {},
        }
        settings = Settings.model_validate(raw)
        if spawner_config:
            settings.spawner.backends[spawner] = spawner_config
        plugins: list[object] = [CompatPlugin()]
        if proxy:
            import hubkit_proxy.plugin as proxy_plugin

            settings.proxy.backends["hubkit-proxy"] = {"api_url": "http://127.0.0.1:0"}
            plugins.append(proxy_plugin)
        hub = await Hub.create(settings, extra_plugins=plugins, load_entry_points=False)
        await hub.start()
        app = create_app(hub)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=hub_port, log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        public_port = hub.proxy.public_port if proxy else hub_port  # type: ignore[attr-defined]
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        started.append((hub, server, task, data))
        live = LiveHub(
            hub=hub,
            public=f"http://127.0.0.1:{public_port if proxy else hub_port}",
            hub_url=f"http://127.0.0.1:{hub_port}",
            api=f"http://127.0.0.1:{hub_port}/hub/api",
            admin_token="",
            data_dir=data,
        )
        live.admin_token = await live.token("admin", ["inherit"], admin=True)
        return live

    yield make
    from sqlalchemy import select

    for hub, server, task, data in reversed(started):
        async with hub.db() as s:
            rows = (
                await s.execute(
                    select(User.name, Server.name)
                    .join(User, User.id == Server.user_id)
                    .where(Server.status != ServerStatus.STOPPED)
                )
            ).all()
        for user, name in rows:
            with contextlib.suppress(Exception):
                await hub.spawns.stop(user, name)
        server.should_exit = True
        await task
        await hub.stop()
        with contextlib.suppress(Exception):
            from hubkit_proxy import launcher

            for pid_file in data.glob("*.pid"):
                launcher.stop(str(pid_file))
