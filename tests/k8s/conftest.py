"""Hub-level Kubernetes tests: the fake API server in-process, a real hub + hubkit-proxy as processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit_spawn_k8s.testing import FakeKubernetes

from .hubctl import IMAGES


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(tmp_path / "cluster", images=list(IMAGES)) as fake:
        yield fake
