"""A real pull by the Docker engine from a registry on 127.0.0.1: progress counts layers and bytes."""

from __future__ import annotations

import docker
import pytest
from hubkit.errors import SpawnFailed
from hubkit.interfaces import Phase
from hubkit_spawn_docker.testing import RecordingContext, containers_of, make_spec
from hubkit_spawn_docker.testing.registry import Image, Registry

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.timeout(180)]


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    try:
        client.images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


async def test_pull_reports_layers_and_bytes(make_backend, docker_client: docker.DockerClient, hub_id: str):
    image = Image.build(f"hubkit/{hub_id}", "v1", [3 * 1024 * 1024, 2 * 1024 * 1024])
    with Registry([image], chunk_delay=0.1) as registry:
        ref = registry.ref(image)
        _remove_image(docker_client, ref)
        backend = await make_backend(image=ref, pull_policy="if-missing")
        ctx = RecordingContext()
        try:
            # The image pulls; its command does not exist, so the spawn then fails cleanly.
            with pytest.raises(SpawnFailed) as err:
                await backend.start(make_spec(hub_id, "puller", server_id=30, cmd=()), ctx)
            assert err.value.reason_code in ("command-not-found", "container-start-failed"), str(err.value)
            pulls = [e for e in ctx.events if e.phase is Phase.PULLING]
            assert pulls[0].message == f"Pulling image {ref}"
            counted = [e for e in pulls if "layers_total" in e.detail]
            assert counted, pulls
            last = counted[-1].detail
            assert last["layers_total"] == 2 and last["layers_done"] == 2
            assert last["bytes_total"] == sum(image.layer_sizes)
            assert last["bytes_done"] == last["bytes_total"]
            assert any(0 < e.detail["bytes_done"] < e.detail["bytes_total"] for e in counted), [
                e.detail for e in counted
            ]
            assert [e.progress for e in counted] == sorted(e.progress or 0 for e in counted)
            assert any("/blobs/" in p for p in registry.requests)
            docker_client.images.get(ref)  # now local
            assert containers_of(docker_client, hub_id, "puller") == []

            # Present now: "if-missing" does not pull again.
            ctx2 = RecordingContext()
            with pytest.raises(SpawnFailed):
                await backend.start(make_spec(hub_id, "puller", server_id=30, cmd=()), ctx2)
            assert not [e for e in ctx2.events if e.phase is Phase.PULLING]
        finally:
            _remove_image(docker_client, ref)


async def test_pull_of_unknown_tag_is_image_missing(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    image = Image.build(f"hubkit/{hub_id}", "v1", [1024])
    with Registry([image]) as registry:
        ref = f"127.0.0.1:{registry.port}/hubkit/{hub_id}:no-such-tag"
        backend = await make_backend(image=ref, pull_policy="always")
        with pytest.raises(SpawnFailed) as err:
            await backend.start(make_spec(hub_id, "nobody", server_id=31), RecordingContext())
        assert err.value.reason_code == "image-missing", str(err.value)
        assert containers_of(docker_client, hub_id, "nobody") == []


async def test_cancelled_pull_returns_promptly(make_backend, docker_client: docker.DockerClient, hub_id: str):
    """The core's start_timeout cancels start(); a slow pull must not hold the spawn until it finishes."""
    import time

    import anyio

    image = Image.build(f"hubkit/{hub_id}", "slow", [4 * 1024 * 1024])
    with Registry([image], chunk_delay=0.5) as registry:  # about 8 s to download
        ref = registry.ref(image)
        backend = await make_backend(image=ref, pull_policy="always")
        ctx = RecordingContext()
        t0 = time.monotonic()
        with anyio.move_on_after(1.5) as scope:
            await backend.start(make_spec(hub_id, "slowpoke", server_id=32), ctx)
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 4
        assert ctx.states == [] and containers_of(docker_client, hub_id, "slowpoke") == []
        seen = len(ctx.events)
        await anyio.sleep(1.5)
        assert len(ctx.events) == seen  # the abandoned pull reports nothing more
    _remove_image(docker_client, ref)
