"""Failures a person can act on: each ends with a clear reason and leaves nothing running."""

from __future__ import annotations

import docker
import pytest
from hubkit.errors import SpawnFailed
from hubkit.interfaces import Phase
from hubkit_spawn_docker.testing import RecordingContext, containers_of, make_spec, wait_exit

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.timeout(180)]


async def test_missing_image_with_pull_never(make_backend, docker_client: docker.DockerClient, hub_id: str):
    backend = await make_backend(image="hubkit-no-such-image:404", pull_policy="never")
    with pytest.raises(SpawnFailed) as err:
        await backend.start(make_spec(hub_id, "frank", server_id=10), RecordingContext())
    assert err.value.reason_code == "image-missing"
    assert "hubkit-no-such-image:404" in str(err.value)
    assert containers_of(docker_client, hub_id, "frank") == []


async def test_failed_pull_reports_progress_then_fails(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    # Nothing listens on 127.0.0.1:1, so the engine's pull fails at once with a connection error.
    backend = await make_backend(image="127.0.0.1:1/hubkit/nothing:1", pull_policy="if-missing")
    ctx = RecordingContext()
    with pytest.raises(SpawnFailed) as err:
        await backend.start(make_spec(hub_id, "grace", server_id=11), ctx)
    assert err.value.reason_code == "image-pull-failed", str(err.value)
    assert "127.0.0.1:1/hubkit/nothing:1" in str(err.value)
    assert ctx.events and ctx.events[0].phase is Phase.PULLING
    assert ctx.states == []  # nothing was about to be created
    assert containers_of(docker_client, hub_id, "grace") == []


async def test_command_that_exits_at_once_is_seen_by_poll(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend()
    spec = make_spec(
        hub_id,
        "heidi",
        server_id=12,
        cmd=("python3", "-c", "import time; time.sleep(2); print('boom: bad config'); raise SystemExit(3)"),
    )
    result = await backend.start(spec, RecordingContext())
    status = await wait_exit(backend, spec, result.state)
    assert status.code == 3
    assert status.reason_code == "exited"
    assert "boom: bad config" in status.reason
    assert "boom: bad config" in " ".join(await backend.log_tail(spec, result.state))
    await backend.stop(spec, result.state)  # what the core does on failure
    assert containers_of(docker_client, hub_id, "heidi") == []


async def test_command_that_exits_at_once_fails_start_with_check_window(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend(start_check_seconds=5)
    spec = make_spec(
        hub_id, "ivan", server_id=13, cmd=("python3", "-c", "import sys; sys.exit('no such notebook dir')")
    )
    with pytest.raises(SpawnFailed) as err:
        await backend.start(spec, RecordingContext())
    assert err.value.reason_code == "exited"
    assert "exited with code 1" in str(err.value) and "no such notebook dir" in str(err.value)
    assert containers_of(docker_client, hub_id, "ivan") == []


async def test_missing_executable_fails_start(make_backend, docker_client: docker.DockerClient, hub_id: str):
    # The image's tini entrypoint reports the missing program by exiting 127 just after the container started,
    # so whether start() itself sees it is a race unless the early-exit window is on (the hub's engine catches
    # it either way, by polling during the readiness check).
    backend = await make_backend(start_check_seconds=2)
    spec = make_spec(hub_id, "judy", server_id=14, cmd=("no-such-program-xyz",))
    with pytest.raises(SpawnFailed) as err:
        await backend.start(spec, RecordingContext())
    assert err.value.reason_code == "command-not-found", str(err.value)
    assert "no-such-program-xyz" in str(err.value)
    assert containers_of(docker_client, hub_id, "judy") == []


async def test_memory_limit_hit_is_an_oom_kill(make_backend, docker_client: docker.DockerClient, hub_id: str):
    backend = await make_backend(mem_limit="64m")
    hog = "b = []\nwhile True:\n    b.append(bytearray(16 * 1024 * 1024))"
    spec = make_spec(hub_id, "ken", server_id=15, cmd=("python3", "-c", hog))
    result = await backend.start(spec, RecordingContext())
    status = await wait_exit(backend, spec, result.state)
    assert status.reason_code == "oom-killed", status
    assert "out of memory" in status.reason and "64m" in status.reason
    await backend.stop(spec, result.state)
    assert containers_of(docker_client, hub_id, "ken") == []


async def test_disallowed_image_option_is_refused_at_start(
    make_backend, docker_client: docker.DockerClient, hub_id: str
):
    backend = await make_backend(allowed_images={"Python": "hubkit-test-singleuser:latest"})
    spec = make_spec(hub_id, "leo", server_id=16, user_options={"image": "evil/miner:latest"})
    with pytest.raises(SpawnFailed) as err:
        await backend.start(spec, RecordingContext())
    assert err.value.reason_code == "invalid-options"
    assert containers_of(docker_client, hub_id, "leo") == []


async def test_cancelled_start_leaves_nothing(make_backend, docker_client: docker.DockerClient, hub_id: str):
    import anyio

    backend = await make_backend(start_check_seconds=20)
    spec = make_spec(hub_id, "mallory", server_id=17)
    ctx = RecordingContext()
    with anyio.move_on_after(3):  # the core's start_timeout does this; here inside the check window
        await backend.start(spec, ctx)
    assert ctx.states, "the container was being created when the start was cancelled"
    assert containers_of(docker_client, hub_id, "mallory") == []
