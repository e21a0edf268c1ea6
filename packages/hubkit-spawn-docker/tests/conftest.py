"""Fixtures for driving the Docker backend directly against the real engine (no hub needed).

Each test session uses its own hub id, so its containers and volumes are told apart from anything else on
the engine and removed at the end whatever happened.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from hubkit.plugins.registry import HubInfo
from hubkit.testing import require
from hubkit_spawn_docker import DockerSpawner, DockerSpawnerConfig
from hubkit_spawn_docker.naming import LABEL_HUB

REPO = Path(__file__).resolve().parents[3]


def _docker_client() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = _docker_client()
    require(client is not None, "no Docker engine answers (run .ci/setup/docker.sh as root)")
    assert client is not None
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    tag = os.environ.get("HUBKIT_TEST_IMAGE", "")
    tag_file = REPO / ".cache" / "docker" / "image-tag"
    if not tag and tag_file.exists():
        tag = tag_file.read_text().strip()
    tag = tag or "hubkit-test-singleuser:latest"
    try:
        docker_client.images.get(tag)
        present = True
    except docker.errors.ImageNotFound:
        present = False
    require(present, f"test image {tag} is missing (run .ci/setup/docker.sh as root)")
    return tag


@pytest.fixture(scope="session")
def hub_id(docker_client: docker.DockerClient) -> Iterator[str]:
    hid = f"test{uuid.uuid4().hex[:8]}"
    yield hid
    flt = {"label": f"{LABEL_HUB}={hid}"}
    for c in docker_client.containers.list(all=True, filters=flt):
        c.remove(force=True)
    for v in docker_client.volumes.list(filters=flt):
        v.remove(force=True)
    for n in docker_client.networks.list(filters=flt):
        n.remove()


@pytest.fixture
def make_backend(hub_id: str, test_image: str) -> Iterator[Any]:
    """Build started backends with config overrides; shut them down after the test (servers keep running)."""
    made: list[DockerSpawner] = []

    async def make(**overrides: Any) -> DockerSpawner:
        cfg = DockerSpawnerConfig.model_validate({"image": test_image, "pull_policy": "never", **overrides})
        info = HubInfo(
            hub_id=hub_id,
            data_dir="/tmp",
            hub_api_url="http://127.0.0.1:9/hub/api",
            hub_url="http://127.0.0.1:9",
            public_url="http://127.0.0.1:8000",
        )
        backend = DockerSpawner(config=cfg, hub=info)
        await backend.startup()
        made.append(backend)
        return backend

    yield make
    for b in made:
        if b._client is not None:
            b._client.close()
            b._client = None
