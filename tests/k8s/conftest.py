"""Hub-level Kubernetes tests: a real control plane built from Debian's source package and a real kubelet
(session-scoped, torn down by PID), a real hub + hubkit-proxy as processes. Missing parts skip locally and fail
in CI (CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit.testing import require
from hubkit_spawn_k8s.testing import ControlPlane, find_bin_dir
from hubkit_spawn_k8s.testing.helpers import Namespace, test_image


@pytest.fixture(scope="session")
def image() -> str:
    tag = test_image()
    require(tag is not None, "the single-user test image is missing: run .ci/setup/docker.sh")
    assert tag is not None
    return tag


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[ControlPlane]:
    require(find_bin_dir() is not None, "no Kubernetes binaries: run .ci/setup/k8s.sh")
    with ControlPlane(tmp_path_factory.mktemp("k8s"), kubelet=True, audit=True) as cp:
        yield cp


@pytest.fixture
def ns(cluster: ControlPlane, tmp_path: Path) -> Iterator[Namespace]:
    space = Namespace.create(cluster, tmp_path)
    yield space
    space.delete()
