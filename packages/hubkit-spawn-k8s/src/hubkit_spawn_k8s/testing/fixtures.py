"""The pytest fixtures and the hook both Kubernetes test folders share (``packages/hubkit-spawn-k8s/tests``,
``tests/k8s``): import them into a ``conftest.py``.

* ``pytest_collection_finish`` waits, before any test runs (so no test's timeout counts it), for a build of
  the binaries that ``.ci/setup/k8s.sh`` started in the background, when a collected test needs them.
* ``k8s_bin``: the binaries' folder; ``image``: the single-user test image; ``cluster``: one control plane and
  kubelet per pytest process, stopped by PID at its end; ``ns``: a namespace per test whose hub account has exactly the Role
  of ``examples/k8s``.

A missing image or missing binaries skip locally and fail in CI (``CI=true``); a failed build always fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit.testing import require

from .binaries import BuildFailed, wait_for_binaries
from .controlplane import ControlPlane
from .helpers import Namespace, test_image

_FOUND = pytest.StashKey[Path | None]()
_FAILED = pytest.StashKey[str]()
_CLUSTER = pytest.StashKey[ControlPlane]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any("k8s_bin" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    try:
        session.config.stash[_FOUND] = wait_for_binaries(say=say)
    except BuildFailed as exc:
        session.config.stash[_FAILED] = str(exc)


@pytest.fixture(scope="session")
def image() -> str:
    tag = test_image()
    require(tag is not None, "the single-user test image is missing: run .ci/setup/docker.sh")
    assert tag is not None
    return tag


@pytest.fixture(scope="session")
def k8s_bin(request: pytest.FixtureRequest) -> Path:
    stash = request.config.stash
    if _FAILED in stash:
        pytest.fail(stash[_FAILED], pytrace=False)
    bin_dir = stash[_FOUND] if _FOUND in stash else wait_for_binaries()
    require(bin_dir is not None, "no Kubernetes binaries: run .ci/setup/k8s.sh")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory,
            image: str) -> ControlPlane:
    """One per pytest process, even when both folders run in one session (each conftest offers this fixture,
    and the machine's one kubelet cannot serve two control planes)."""
    stash = request.config.stash
    if _CLUSTER not in stash:
        cp = ControlPlane(tmp_path_factory.mktemp("k8s"), bin_dir=k8s_bin, kubelet=True, audit=True).start()
        request.config.add_cleanup(cp.stop)
        stash[_CLUSTER] = cp
    return stash[_CLUSTER]


@pytest.fixture
def ns(cluster: ControlPlane, tmp_path: Path) -> Iterator[Namespace]:
    space = Namespace.create(cluster, tmp_path)
    yield space
    space.delete()
