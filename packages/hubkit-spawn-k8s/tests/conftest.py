from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hubkit_spawn_k8s.spawner import KubeSpawner
from hubkit_spawn_k8s.testing import FakeKubernetes
from hubkit_spawn_k8s.testing.helpers import IMAGES, hub_info, make_config


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(tmp_path / "cluster", images=list(IMAGES)) as fake:
        fake.cluster.bookmark_interval = 0.5
        yield fake


@pytest.fixture
async def spawner(kube: FakeKubernetes, tmp_path: Path) -> AsyncIterator[KubeSpawner]:
    sp = KubeSpawner(make_config(kube, tmp_path), hub_info())
    await sp.startup()
    yield sp
    await sp.shutdown()
