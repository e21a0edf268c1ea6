"""Orphans, re-adoption after a hub restart, user deletion and the user-defined network mode."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap

import docker
import httpx
import pytest
from hubkit.interfaces import KnownServer, UserInfo
from hubkit.plugins.hooks import Hooks
from hubkit.plugins.manager import build_plugin_manager
from hubkit_spawn_docker.testing import JUPYTER_CMD, RecordingContext, containers_of, make_spec, wait_ready

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.timeout(240)]


async def test_orphan_reported_then_removed_known_adopted(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend()
    known_spec = make_spec(hub_id, "olga", server_id=20)
    orphan_spec = make_spec(hub_id, "oscar", server_id=21)
    known = await backend.start(known_spec, RecordingContext())
    orphan = await backend.start(orphan_spec, RecordingContext())
    # A container of another hub on the same engine must never be touched.
    other = docker_client.containers.run(
        backend.config.image,
        ["sleep", "300"],
        detach=True,
        labels={"org.hubkit.hub": hub_id + "-other", "org.hubkit.role": "server", "org.hubkit.user": "x"},
    )
    try:
        ks = [
            KnownServer(spec=known_spec, state=known.state),
            KnownServer(spec=make_spec(hub_id, "gone", server_id=22), state={"container_name": "nope"}),
        ]
        report = await backend.reconcile(ks, remove_orphans=False)
        assert report.adopted == ("olga/",)
        assert report.reported == (orphan.state["container_name"],)
        assert report.removed == ()
        assert report.missing == ("gone/",)
        assert len(containers_of(docker_client, hub_id, "oscar")) == 1  # report-only leaves it

        report = await backend.reconcile(ks, remove_orphans=True)
        assert report.removed == (orphan.state["container_name"],)
        assert containers_of(docker_client, hub_id, "oscar") == []
        assert [c.id for c in containers_of(docker_client, hub_id, "olga")] == [known.state["container_id"]]
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)
        await backend.stop(known_spec, known.state, now=True)


async def test_stale_container_for_known_server_is_an_orphan(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    """The hub's state names a different container than the one found: the found one is not adopted."""
    backend = await make_backend()
    spec = make_spec(hub_id, "peggy", server_id=23)
    started = await backend.start(spec, RecordingContext())
    try:
        wrong = {**started.state, "container_id": "0" * 64}
        report = await backend.reconcile([KnownServer(spec=spec, state=wrong)], remove_orphans=False)
        assert report.adopted == ()
        assert report.reported == (started.state["container_name"],)
    finally:
        await backend.stop(spec, started.state, now=True)


async def test_readopt_from_state_after_restart(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    first = await make_backend()
    spec = make_spec(hub_id, "quinn", server_id=24)
    result = await first.start(spec, RecordingContext())
    await wait_ready(first, spec, result.state, result.endpoint.url)
    await first.shutdown()  # the hub goes away; the server must keep running
    assert [c.status for c in containers_of(docker_client, hub_id, "quinn")] == ["running"]

    second = await make_backend()  # a new hub process: only the persisted state survives
    assert await second.poll(spec, dict(result.state)) is None
    report = await second.reconcile([KnownServer(spec=spec, state=dict(result.state))], remove_orphans=True)
    assert report.adopted == ("quinn/",) and report.removed == ()
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{result.endpoint.url}/user/quinn/api/status")
    assert r.status_code == 200
    # State holding only the name (a hub killed between save_state and create's return) still finds it.
    by_name = {k: v for k, v in result.state.items() if k != "container_id"}
    assert await second.poll(spec, by_name) is None
    await second.stop(spec, by_name)
    assert containers_of(docker_client, hub_id, "quinn") == []


async def test_hub_killed_between_create_and_saving_the_id(
    make_backend, docker_client: docker.DockerClient, hub_id: str, test_image: str
):
    """Issue 12.12's audit, with a real kill: the hub dies right after the container exists, before it saved the
    container id. The name saved before creating is enough for a new hub to report, stop and remove it."""
    script = textwrap.dedent(
        f"""
        import asyncio, json, os, signal, sys
        from hubkit.plugins.registry import HubInfo
        from hubkit_spawn_docker import DockerSpawner, DockerSpawnerConfig
        from hubkit_spawn_docker.testing import make_spec

        class Ctx:
            async def emit(self, event): pass
            async def save_state(self, state): print(json.dumps(state), flush=True)

        real_create = DockerSpawner._create
        async def create_then_die(self, plan):
            await real_create(self, plan)
            os.kill(os.getpid(), signal.SIGKILL)  # the exact point: the container exists, its id is unsaved
        DockerSpawner._create = create_then_die
        hub = HubInfo(hub_id={hub_id!r}, data_dir="/tmp", hub_api_url="http://127.0.0.1:9/hub/api",
                      hub_url="http://127.0.0.1:9", public_url="http://127.0.0.1:8000")
        backend = DockerSpawner(config=DockerSpawnerConfig(image={test_image!r}, pull_policy="never"), hub=hub)
        async def main():
            await backend.startup()
            await backend.start(make_spec({hub_id!r}, "vera", server_id=27, cmd=("sleep", "300")), Ctx())
        asyncio.run(main())
        """
    )
    hub = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert hub.returncode == -signal.SIGKILL, hub.stderr
    saved = [json.loads(line) for line in hub.stdout.splitlines()]
    assert len(saved) == 1 and "container_id" not in saved[0]  # what the hub's database holds
    assert len(containers_of(docker_client, hub_id, "vera")) == 1
    second = await make_backend()  # the restarted hub
    report = await second.reconcile([], remove_orphans=False)
    assert saved[0]["container_name"] in report.reported
    spec = make_spec(hub_id, "vera", server_id=27)
    await second.stop(spec, saved[0])
    assert containers_of(docker_client, hub_id, "vera") == []


async def test_user_deleted_hook_removes_volume_when_configured(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    keep = await make_backend(delete_volume_on_user_delete=False)
    spec = make_spec(hub_id, "rita", server_id=25, cmd=("sleep", "300"))
    result = await keep.start(spec, RecordingContext())
    await keep.stop(spec, result.state)
    volume = result.state["volume"]
    await keep.delete_user_resources(UserInfo(name="rita"))
    assert docker_client.volumes.get(volume).name == volume  # kept by default
    await keep.shutdown()

    delete = await make_backend(delete_volume_on_user_delete=True, remove_on_stop=False)
    result = await delete.start(spec, RecordingContext())
    await delete.stop(spec, result.state)
    assert len(containers_of(docker_client, hub_id, "rita")) == 1  # kept container
    pm = build_plugin_manager(allow=["docker"])  # a hub that built ``delete``: its instance is a plugin
    pm.register_instance(delete, "spawner:docker", "hubkit-spawn-docker")
    await Hooks(pm).user_deleted(UserInfo(name="rita"))  # the hook reaches the started backend
    assert containers_of(docker_client, hub_id, "rita") == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)


async def test_user_defined_network_reached_by_name(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    net = docker_client.networks.create(f"{hub_id}-net", driver="bridge", labels={"org.hubkit.hub": hub_id})
    backend = await make_backend(network_mode="network", network_name=net.name)
    spec = make_spec(hub_id, "sam", server_id=26, cmd=JUPYTER_CMD)
    result = await backend.start(spec, RecordingContext())
    name = result.state["container_name"]
    try:
        assert result.endpoint.url == f"http://{name}:8888"
        # A "hub" container on the same network reaches the server by its name, like the compose example.
        probe = (
            "import time, urllib.request, urllib.error\n"
            "for i in range(120):\n"
            "    try:\n"
            f"        print(urllib.request.urlopen('{result.endpoint.url}/user/sam/api/status', timeout=2).status); break\n"
            "    except (urllib.error.URLError, OSError):\n"
            "        time.sleep(0.5)\n"
            "else:\n"
            "    raise SystemExit('never answered')\n"
        )
        out = docker_client.containers.run(
            backend.config.image,
            ["python3", "-c", probe],
            network=net.name,
            remove=True,
            labels={"org.hubkit.hub": hub_id},
        )
        assert out.decode().strip() == "200"
    finally:
        await backend.stop(spec, result.state, now=True)
        net.remove()
