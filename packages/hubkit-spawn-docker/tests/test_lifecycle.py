"""Start, readiness, stop and the home volume, on the real Docker engine."""

from __future__ import annotations

import json

import docker
import httpx
import pytest
from hubkit_spawn_docker.naming import LABEL_HUB, LABEL_ROLE, LABEL_SERVER, LABEL_USER
from hubkit_spawn_docker.testing import RecordingContext, containers_of, make_spec, wait_ready

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.timeout(240)]


async def test_host_network_start_ready_stop_removes(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend(network_mode="host")
    spec = make_spec(hub_id, "alice")
    ctx = RecordingContext(docker_client)
    result = await backend.start(spec, ctx)

    # The name was decided and saved before the container existed; the id was saved once it did.
    assert ctx.existed_at_first_save is False
    assert ctx.states[0]["container_name"] == result.state["container_name"]
    assert "container_id" in ctx.states[-1]
    assert [e.message.split()[0] for e in ctx.events] == ["Creating", "Starting"]
    assert [e.progress for e in ctx.events] == sorted(e.progress or 0 for e in ctx.events)

    url = result.endpoint.url
    assert url.startswith("http://127.0.0.1:")
    assert await wait_ready(backend, spec, result.state, url) < 500

    container = docker_client.containers.get(result.state["container_id"])
    assert container.labels[LABEL_HUB] == hub_id
    assert container.labels[LABEL_USER] == "alice"
    assert container.labels[LABEL_SERVER] == ""
    env = dict(kv.split("=", 1) for kv in container.attrs["Config"]["Env"])
    assert env["JUPYTERHUB_SERVICE_URL"] == f"{url}/user/alice/"
    assert env["JUPYTERHUB_API_TOKEN"] == "t" * 32
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert await backend.poll(spec, result.state) is None
    assert any("jupyter" in line.lower() for line in await backend.log_tail(spec, result.state))

    await backend.stop(spec, result.state)
    assert containers_of(docker_client, hub_id, "alice") == []
    status = await backend.poll(spec, result.state)
    assert status is not None and status.reason_code == "container-missing"
    await backend.stop(spec, result.state)  # idempotent


async def test_published_port_on_loopback(make_backend, docker_client: docker.DockerClient, hub_id: str):
    backend = await make_backend(network_mode="published", container_port=8888)
    spec = make_spec(hub_id, "bob", "nb1", server_id=2)
    result = await backend.start(spec, RecordingContext())
    try:
        attrs = docker_client.containers.get(result.state["container_id"]).attrs
        binding = attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        assert result.endpoint.url == f"http://127.0.0.1:{binding['HostPort']}"
        assert result.state["container_name"].endswith("--nb1")
        await wait_ready(backend, spec, result.state, result.endpoint.url)
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{result.endpoint.url}/user/bob/nb1/api/status")
        assert r.status_code == 200, r.text
    finally:
        await backend.stop(spec, result.state, now=True)
    assert containers_of(docker_client, hub_id, "bob") == []


async def test_keep_on_stop_then_restart(make_backend, docker_client: docker.DockerClient, hub_id: str):
    backend = await make_backend(remove_on_stop=False, stop_timeout=2)
    spec = make_spec(hub_id, "carol", server_id=3)
    first = await backend.start(spec, RecordingContext())
    await wait_ready(backend, spec, first.state, first.endpoint.url)
    await backend.stop(spec, first.state)
    kept = containers_of(docker_client, hub_id, "carol")
    assert [c.status for c in kept] == ["exited"]

    ctx = RecordingContext()
    second = await backend.start(spec, ctx)  # the kept container is replaced, not a name clash
    try:
        assert second.state["container_id"] != first.state["container_id"]
        assert any("Removing old container" in e.message for e in ctx.events)
        await wait_ready(backend, spec, second.state, second.endpoint.url)
    finally:
        await backend.stop(spec, second.state, now=True)
        for c in containers_of(docker_client, hub_id, "carol"):
            c.remove(force=True)


async def test_home_volume_survives_stop_and_new_start(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend()
    spec = make_spec(hub_id, "dave@example.org", server_id=4)
    first = await backend.start(spec, RecordingContext())
    await wait_ready(backend, spec, first.state, first.endpoint.url)
    volume = first.state["volume"]
    assert docker_client.volumes.get(volume).attrs["Labels"][LABEL_ROLE] == "home"
    c = docker_client.containers.get(first.state["container_id"])
    rc, out = c.exec_run(["sh", "-c", "echo kept-across-restarts > $HOME/notes.txt && id -u"])
    assert rc == 0, out
    assert out.decode().strip() == "1000"  # the image's user owns the fresh volume
    await backend.stop(spec, first.state)
    assert containers_of(docker_client, hub_id, "dave@example.org") == []

    second = await backend.start(spec, RecordingContext())
    try:
        assert second.state["volume"] == volume
        await wait_ready(backend, spec, second.state, second.endpoint.url)
        prefix = "/user/dave@example.org/"
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{second.endpoint.url}{prefix}api/contents/notes.txt", params={"content": "1"}
            )
        assert r.status_code == 200, r.text
        assert json.loads(r.text)["content"].strip() == "kept-across-restarts"
    finally:
        await backend.stop(spec, second.state)


async def test_limits_user_and_mounts_are_applied(
    make_backend, docker_client: docker.DockerClient, hub_id: str, tmp_path
):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.csv").write_text("a,b\n1,2\n")
    backend = await make_backend(
        mem_limit="256m",
        cpu_limit=0.5,
        user="1000:1000",
        extra_env={"GREETING": "hi"},
        mounts=[{"source": str(shared), "target": "/srv/shared", "type": "bind", "read_only": True}],
    )
    spec = make_spec(hub_id, "erin", server_id=5)
    result = await backend.start(spec, RecordingContext())
    try:
        c = docker_client.containers.get(result.state["container_id"])
        host = c.attrs["HostConfig"]
        assert host["Memory"] == 256 * 1024 * 1024
        assert host["NanoCpus"] == 500_000_000
        assert c.attrs["Config"]["User"] == "1000:1000"
        env = dict(kv.split("=", 1) for kv in c.attrs["Config"]["Env"])
        assert (
            env["GREETING"] == "hi"
            and env["MEM_LIMIT"] == str(256 * 1024 * 1024)
            and env["CPU_LIMIT"] == "0.5"
        )
        rc, out = c.exec_run(["cat", "/srv/shared/data.csv"])
        assert rc == 0 and out.decode().startswith("a,b")
        rc, out = c.exec_run(["sh", "-c", "echo x > /srv/shared/new.txt"])
        assert rc != 0 and b"Read-only" in out
        assert not (shared / "new.txt").exists()
    finally:
        await backend.stop(spec, result.state, now=True)
