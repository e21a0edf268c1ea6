"""Helpers for testing the Docker backend directly (no hub): a recording SpawnContext, specs, readiness and
exit waits. Used by this package's tests; plugin authors building on the backend may use them too.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import docker
import docker.errors
import httpx
from hubkit.interfaces import ExitStatus, JSONDict, ProgressEvent, ServerSpec, UserInfo

from ..backend import DockerSpawner
from ..naming import LABEL_HUB

# Runs real jupyter-server in the container, bound where JUPYTERHUB_SERVICE_URL says, without a hub to talk to.
JUPYTER_CMD = (
    "python3",
    "-c",
    "import os; from urllib.parse import urlsplit; u = urlsplit(os.environ['JUPYTERHUB_SERVICE_URL']); "
    "os.execvp('jupyter', ['jupyter', 'server', '--ServerApp.ip=' + u.hostname, "
    "'--ServerApp.port=' + str(u.port), '--ServerApp.base_url=' + u.path, '--ServerApp.port_retries=0', "
    "'--IdentityProvider.token=', '--ServerApp.password=', '--ServerApp.open_browser=False', "
    "'--ServerApp.root_dir=' + os.environ.get('HOME', '/tmp')])",
)


class RecordingContext:
    """A real SpawnContext that remembers events and states, and what existed when state was saved."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.events: list[ProgressEvent] = []
        self.states: list[JSONDict] = []
        self.existed_at_first_save: bool | None = None
        self._client = client

    async def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def save_state(self, state: JSONDict) -> None:
        if not self.states and self._client is not None:
            try:
                self._client.containers.get(state["container_name"])
                self.existed_at_first_save = True
            except docker.errors.NotFound:
                self.existed_at_first_save = False
        self.states.append(dict(state))


def make_spec(
    hub_id: str, user: str = "alice", server: str = "", *, server_id: int = 1, **kw: Any
) -> ServerSpec:
    prefix = f"/user/{user}/" + (f"{server}/" if server else "")
    env = {
        "JUPYTERHUB_API_TOKEN": "t" * 32,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server,
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        **kw.pop("env", {}),
    }
    return ServerSpec(
        user=UserInfo(name=user),
        server_name=server,
        server_id=server_id,
        url_prefix=prefix,
        hub_api_url="http://127.0.0.1:9/hub/api",
        env=env,
        hub_id=hub_id,
        cmd=kw.pop("cmd", JUPYTER_CMD),
        **kw,
    )


async def wait_ready(
    backend: DockerSpawner, spec: ServerSpec, state: JSONDict, url: str, limit: float = 90
) -> int:
    """Poll ``{url}{prefix}api`` like the core does; fail fast if the container dies."""
    deadline = time.monotonic() + limit
    delay = 0.05
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                r = await http.get(f"{url}{spec.url_prefix}api", timeout=5)
                if r.status_code < 500:
                    return r.status_code
            except httpx.TransportError:
                pass
            status: ExitStatus | None = await backend.poll(spec, state)
            if status is not None:
                raise AssertionError(f"server died before it answered: {status}")
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError(f"{url}{spec.url_prefix}api did not answer within {limit} s")


async def wait_exit(
    backend: DockerSpawner, spec: ServerSpec, state: JSONDict, limit: float = 60
) -> ExitStatus:
    with anyio.fail_after(limit):
        while True:
            status = await backend.poll(spec, state)
            if status is not None:
                return status
            await anyio.sleep(0.2)


def containers_of(
    client: docker.DockerClient, hub_id: str, user: str | None = None, *, all: bool = True
) -> list[Any]:
    labels = [f"{LABEL_HUB}={hub_id}"]
    if user is not None:
        labels.append(f"org.hubkit.user={user}")
    return list(client.containers.list(all=all, filters={"label": labels}))
