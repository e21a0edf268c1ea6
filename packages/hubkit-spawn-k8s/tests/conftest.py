"""Every test here runs against a real control plane built from Debian's kubernetes source package
(.ci/setup/k8s.sh) with a real kubelet running pods as Docker containers. The fixtures (and the wait for a
build that .ci/setup/k8s.sh still runs in the background) are shared with tests/k8s. Missing parts skip
locally and fail in CI (CI=true)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing.fixtures import cluster, image, k8s_bin, ns, pytest_collection_finish
from hubkit_spawn_k8s.testing.helpers import Namespace, hub_info, make_config

__all__ = ["cluster", "image", "k8s_bin", "ns", "pytest_collection_finish"]


@pytest.fixture
async def spawner(ns: Namespace, image: str) -> AsyncIterator[KubeSpawner]:
    sp = KubeSpawner(make_config(ns, image), hub_info())
    await sp.startup()
    yield sp
    await sp.shutdown()
