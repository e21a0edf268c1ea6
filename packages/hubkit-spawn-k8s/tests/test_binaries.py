"""Waiting for the binaries that .ci/setup/k8s.sh builds in the background, with the files the script writes
and its lock held by a real process (``flock``), in a temporary clone and cache."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hubkit_spawn_k8s.testing.binaries import (
    BIN_ENV,
    REQUIRED,
    BuildFailed,
    locate,
    wait_for_binaries,
)

KEY = "0123456789abcdef"


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A clone whose .cache/k8s links to the folder a build of KEY will fill."""
    monkeypatch.delenv(BIN_ENV, raising=False)
    root, cache = tmp_path / "clone", tmp_path / "cache"
    (root / ".cache").mkdir(parents=True)
    cache.mkdir()
    (root / ".cache" / "k8s").symlink_to(cache / KEY)
    (cache / f"build-{KEY}.log").write_text("building cmd/kubelet\nlast line of the log\n")
    return root, cache / KEY


@pytest.fixture
def running_build(clone: tuple[Path, Path]) -> Iterator[subprocess.Popen[str]]:
    """A process holding the build's lock, as the setup script's background build does while it runs."""
    lock = clone[1].with_name(f"build-{KEY}.lock")
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", "echo locked; exec sleep 60"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield holder
    holder.terminate()
    holder.wait(10)


def _finish(dest: Path) -> None:
    (dest / "bin").mkdir(parents=True)
    for name in REQUIRED:
        (dest / "bin" / name).write_text("")
    (dest / "complete").write_text("built\n")


def test_a_running_build_is_waited_for_then_used(clone: tuple[Path, Path],
                                                 running_build: subprocess.Popen[str]) -> None:
    root, dest = clone
    assert locate(root).building == dest and locate(root).bin_dir is None

    def build_ends() -> None:
        _finish(dest)
        running_build.terminate()

    timer = threading.Timer(0.5, build_ends)
    timer.start()
    said: list[str] = []
    try:
        assert wait_for_binaries(timeout=30, say=said.append, poll=0.05, root=root) == dest / "bin"
    finally:
        timer.cancel()
    assert said and "waiting for the Kubernetes build" in said[0] and "last line of the log" in said[0]


def test_a_failed_build_fails_with_its_reason_and_log(clone: tuple[Path, Path]) -> None:
    root, dest = clone
    dest.with_name(f"build-{KEY}.failed").write_text("make cmd/kubelet failed\n")
    with pytest.raises(BuildFailed, match="make cmd/kubelet failed") as err:
        wait_for_binaries(timeout=5, say=lambda _: None, root=root)
    assert "last line of the log" in str(err.value)


def test_a_build_that_ended_without_finishing_fails(clone: tuple[Path, Path]) -> None:
    root, _ = clone  # no lock held, no result, no reason: e.g. killed with the machine
    with pytest.raises(BuildFailed, match="ended without finishing"):
        wait_for_binaries(timeout=5, say=lambda _: None, root=root)


def test_a_build_still_running_at_the_deadline_fails(clone: tuple[Path, Path],
                                                     running_build: subprocess.Popen[str]) -> None:
    root, _ = clone
    with pytest.raises(BuildFailed, match="still building after"):
        wait_for_binaries(timeout=0.2, say=lambda _: None, poll=0.05, root=root)
