"""The ``docker`` spawner backend: one container per user server.

Every Docker SDK call blocks, so each runs in a worker thread (``anyio.to_thread``). The container's name is
decided and saved as state *before* it is created, so a hub killed mid-spawn (or restarted later) finds it again
by name; a failed or cancelled start removes what it created, so a failure never leaves a container running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from hubkit.errors import PluginError, SpawnFailed
from hubkit.interfaces import (
    Endpoint,
    ExitStatus,
    JSONDict,
    KnownServer,
    OptionsForm,
    Phase,
    ProgressEvent,
    ReconcileReport,
    ServerSpec,
    SpawnContext,
    StartResult,
    UserInfo,
)
from hubkit.plugins import hookimpl
from hubkit.plugins.registry import HubInfo

from . import options
from .config import DockerSpawnerConfig
from .containers import Plan, endpoint_url, free_port, plan_container
from .naming import LABEL_HUB, LABEL_ROLE, LABEL_USER
from .pull import ensure_image
from .reconcile import reconcile_containers
from .status import exit_status

log = logging.getLogger(__name__)
T = TypeVar("T")

_PORT_QUARANTINE = 300.0  # seconds a handed-out host port is not handed out again
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


class DockerSpawner:
    """Implements :class:`hubkit.interfaces.SpawnerBackend` on a Docker engine. Its ``hubkit_*`` methods are
    runtime hooks: the hub registers the instance it built, so they act on this instance's engine and labels."""

    def __init__(self, *, config: DockerSpawnerConfig | None = None, hub: HubInfo) -> None:
        self.config = config or DockerSpawnerConfig.model_validate({})
        self.hub = hub
        self._client: docker.DockerClient | None = None
        self._recent_ports: dict[int, float] = {}

    # -- shared client ---------------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError("DockerSpawner.startup() was not called")
        return self._client

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)

    async def startup(self) -> None:
        def connect() -> docker.DockerClient:
            kwargs: dict[str, Any] = {"max_pool_size": 64, "timeout": 120}
            if self.config.docker_url:
                client = docker.DockerClient(base_url=self.config.docker_url, **kwargs)
            else:
                client = docker.from_env(**kwargs)
            client.ping()
            return client

        try:
            self._client = await self._run(connect)
        except docker.errors.DockerException as exc:
            where = self.config.docker_url or "DOCKER_HOST / the local socket"
            raise PluginError("docker", f"cannot reach the Docker engine at {where}: {exc}") from None

    async def shutdown(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._run(client.close)

    # -- options ---------------------------------------------------------------------------------------------

    def options_form(self, user: UserInfo) -> OptionsForm | None:
        return options.options_form(self.config)

    def parse_options(self, user: UserInfo, form: Mapping[str, Any]) -> JSONDict:
        return options.parse_options(self.config, form)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, spec: ServerSpec, ctx: SpawnContext) -> StartResult:
        image = options.resolve_image(self.config, spec.user_options)
        await ensure_image(self.client, image, self.config.pull_policy, ctx.emit)
        image_cmd = await self._image_cmd(image) if (self.config.command == "image" and spec.args) else None
        host_port = self._pick_port() if self.config.network_mode == "host" else None
        plan = plan_container(spec, self.config, image, image_cmd, host_port=host_port)
        await self._clear_stale(plan.container_name, ctx)
        if plan.volume_name:
            await self._ensure_volume(plan.volume_name, plan.volume_labels)

        state: JSONDict = plan.state()
        await ctx.save_state(state)  # before the container exists: a crash from here on is recoverable
        await ctx.emit(
            ProgressEvent(Phase.STARTING, f"Creating container {plan.container_name}", progress=50)
        )
        container: Container | None = None
        try:
            container = await self._create(plan)
            state = {**state, "container_id": container.id}
            await ctx.save_state(state)
            await ctx.emit(
                ProgressEvent(Phase.STARTING, f"Starting container {plan.container_name}", progress=55)
            )
            await self._start(container, plan)
            await self._check_early_exit(container, plan)
            attrs = await self._inspect(container)
            url = endpoint_url(self.config, state, attrs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(plan.container_name)
            raise
        return StartResult(endpoint=Endpoint(url), state=state)

    async def poll(self, spec: ServerSpec, state: JSONDict) -> ExitStatus | None:
        name = str(state.get("container_name") or "")
        if not name:
            return ExitStatus(
                reason="no container was recorded for this server", reason_code="container-missing"
            )
        try:
            container = await self._get(state)
        except _UNREACHABLE:
            log.warning("docker engine unreachable while polling %s; assuming it still runs", name)
            return None
        if container is None:
            return ExitStatus(reason=f"container {name} no longer exists", reason_code="container-missing")
        status = exit_status(container.attrs, name=name, mem_limit=self.config.mem_limit)
        if status is None:
            return None
        tail = await self._logs(container, 3)
        if tail:
            status = ExitStatus(
                status.code, f"{status.reason}; last output: {' | '.join(tail)}", status.reason_code
            )
        return status

    async def stop(self, spec: ServerSpec, state: JSONDict, *, now: bool = False) -> None:
        container = await self._get(state)
        if container is None:
            return
        timeout = 0 if now else self.config.stop_timeout

        def stop_it() -> None:
            try:
                container.stop(timeout=timeout)
            except docker.errors.NotFound:
                return
            if self.config.remove_on_stop:
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: removal already in progress
                        raise

        await self._run(stop_it)

    async def log_tail(self, spec: ServerSpec, state: JSONDict, lines: int = 40) -> list[str]:
        container = await self._get(state)
        return [] if container is None else await self._logs(container, lines)

    async def reconcile(self, known: Sequence[KnownServer], *, remove_orphans: bool) -> ReconcileReport:
        return await reconcile_containers(self, known, remove_orphans=remove_orphans)

    async def delete_user_resources(self, user: UserInfo) -> list[str]:
        """After a user is deleted: drop their leftover (stopped) containers and, if configured, their volumes."""

        def delete() -> list[str]:
            removed: list[str] = []
            filters = {"label": [f"{LABEL_HUB}={self.hub.hub_id}", f"{LABEL_USER}={user.name}"]}
            for c in self.client.containers.list(all=True, filters=filters):
                c.remove(force=True)
                removed.append(c.name or c.id or "?")
            if self.config.delete_volume_on_user_delete:
                vfilters = {"label": [*filters["label"], f"{LABEL_ROLE}=home"]}
                for v in self.client.volumes.list(filters=vfilters):
                    v.remove(force=True)
                    removed.append(v.name or "?")
            return removed

        return await self._run(delete)

    @hookimpl
    async def hubkit_user_deleted(self, user: UserInfo) -> None:
        if self._client is None:  # not started, or shut down
            return
        removed = await self.delete_user_resources(user)
        if removed:
            log.info("removed Docker resources of deleted user %s: %s", user.name, ", ".join(removed))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _pick_port(self) -> int:
        """A free host port not handed out in the last minutes: servers bind theirs a few seconds after the
        choice, and without this two concurrent spawns could be given the same port."""
        now = time.monotonic()
        self._recent_ports = {p: t for p, t in self._recent_ports.items() if now - t < _PORT_QUARANTINE}
        port = free_port(self.config.connect_host)
        for _ in range(100):
            if port not in self._recent_ports:
                break
            port = free_port(self.config.connect_host)
        self._recent_ports[port] = now
        return port

    async def _image_cmd(self, image: str) -> list[str] | None:
        attrs = (await self._run(self.client.images.get, image)).attrs
        cmd = (attrs.get("Config") or {}).get("Cmd")
        return list(cmd) if cmd else None

    async def _clear_stale(self, name: str, ctx: SpawnContext) -> None:
        """A container with this name is a kept one from an earlier run or a leftover of a crash: replace it."""
        old = await self._get({"container_name": name})
        if old is None:
            return
        await ctx.emit(ProgressEvent(Phase.STARTING, f"Removing old container {name}", progress=45))
        await self._discard(name)

    async def _ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        def ensure() -> None:
            try:
                self.client.volumes.get(name)
            except docker.errors.NotFound:
                self.client.volumes.create(name=name, labels=labels)

        await self._run(ensure)

    async def _create(self, plan: Plan) -> Container:
        try:
            return await self._run(lambda: self.client.containers.create(plan.image, **plan.create_kwargs))
        except docker.errors.ImageNotFound as exc:
            raise SpawnFailed(
                f"image {plan.image} vanished before the container was created: {exc}",
                reason_code="image-missing",
            ) from None
        except docker.errors.APIError as exc:
            raise SpawnFailed(
                f"creating container {plan.container_name} failed: {exc.explanation or exc}",
                reason_code="container-create-failed",
            ) from None

    async def _start(self, container: Container, plan: Plan) -> None:
        try:
            await self._run(container.start)
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            code = (
                "command-not-found"
                if "executable file not found" in text or "no such file" in text.lower()
                else "container-start-failed"
            )
            raise SpawnFailed(
                f"starting container {plan.container_name} failed: {text}", reason_code=code
            ) from None

    async def _check_early_exit(self, container: Container, plan: Plan) -> None:
        """A command that dies at once (bad args, missing module, OOM at import) fails the spawn right here."""
        seconds = self.config.start_check_seconds
        if seconds > 0:

            def wait() -> None:
                try:
                    container.wait(timeout=seconds)
                except _UNREACHABLE:
                    pass  # still running after the window: the normal case

            # Abandoned on cancel: the thread ends by itself once the container is removed.
            await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        attrs = await self._inspect(container)
        status = exit_status(attrs, name=plan.container_name, mem_limit=self.config.mem_limit)
        if status is None:
            return
        tail = await self._logs(container, 5)
        output = ("; last output: " + " | ".join(tail)) if tail else ""
        raise SpawnFailed(f"{status.reason}{output}", reason_code=status.reason_code)

    async def _inspect(self, container: Container) -> dict[str, Any]:
        await self._run(container.reload)
        return dict(container.attrs)

    async def _get(self, state: Mapping[str, Any]) -> Container | None:
        ref = state.get("container_id") or state.get("container_name")
        if not ref:
            return None

        def get() -> Container | None:
            try:
                return self.client.containers.get(str(ref))
            except docker.errors.NotFound:
                if state.get("container_name") and ref != state["container_name"]:
                    try:
                        return self.client.containers.get(str(state["container_name"]))
                    except docker.errors.NotFound:
                        return None
                return None

        return await self._run(get)

    async def _logs(self, container: Container, lines: int) -> list[str]:
        def read() -> list[str]:
            try:
                raw = container.logs(tail=lines)
            except docker.errors.NotFound:
                return []
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            return [ln for ln in text.splitlines() if ln.strip()][-lines:]

        return await self._run(read)

    async def _discard(self, name: str) -> None:
        def remove() -> None:
            try:
                self.client.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise

        try:
            await self._run(remove)
        except Exception:  # cleanup must not hide the original failure
            log.exception("could not remove container %s", name)
