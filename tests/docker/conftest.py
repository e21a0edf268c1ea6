"""Fixtures for hub-level Docker tests: a real engine, the locally built image, a hub process per test."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from hubkit.testing import require


def _load_helpers() -> object:
    """Load hubctl.py under a unique name: a package called ``docker`` here would shadow the Docker SDK."""
    name = "hubkit_tests_docker_hubctl"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("hubctl.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_load_helpers()
from hubkit_tests_docker_hubctl import HubProc, docker_client, find_test_image, running  # noqa: E402


@pytest.fixture(scope="session")
def dclient() -> Iterator[docker.DockerClient]:
    client = docker_client()
    require(client is not None, "no Docker engine answers (run .ci/setup/docker.sh as root)")
    assert client is not None
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(dclient: docker.DockerClient) -> str:
    tag = find_test_image(dclient)
    require(tag is not None, "the hubkit-singleuser test image is missing (run .ci/setup/docker.sh as root)")
    assert tag is not None
    return tag


@pytest.fixture
def make_hub(tmp_path: Path, image: str, dclient: docker.DockerClient) -> Iterator[object]:
    """``with make_hub(**docker_overrides) as hub``: a started hub, stopped and cleaned up afterwards."""
    n = 0

    def make(spawner: dict[str, object] | None = None, **docker_overrides: object):  # type: ignore[no-untyped-def]
        nonlocal n
        n += 1
        hub = HubProc(tmp_path / f"hub{n}", image, dict(docker_overrides), dict(spawner or {}))
        return running(hub, dclient)

    yield make
