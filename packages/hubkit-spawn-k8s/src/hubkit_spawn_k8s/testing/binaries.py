"""Where the control plane's binaries are, and waiting for them while ``.ci/setup/k8s.sh`` still builds them.

The setup script starts an uncached build in the background (it takes minutes) and links
``<repo>/.cache/k8s`` to the folder the build will create; next to that folder, ``build-<key>.lock`` is held
for as long as the build runs, ``build-<key>.failed`` says why it failed and ``build-<key>.log`` has its output.
A folder with a ``complete`` file is a finished build.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BIN_ENV = "HUBKIT_K8S_BIN"
WAIT_ENV = "HUBKIT_K8S_BUILD_WAIT"  # seconds the tests wait for a running build (default 45 min)
CACHE_CURRENT = Path("/var/cache/hubkit-ci/k8s/current")
REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class BuildFailed(RuntimeError):
    """The build of the binaries failed, or ended without finishing: a clear failure, never a skip."""


def repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / ".ci" / "setup" / "k8s.sh").exists():
            return parent
    return None


def _has_binaries(d: Path) -> bool:
    return all((d / b).is_file() for b in REQUIRED)


@dataclass(frozen=True)
class Binaries:
    """What there is now: ``bin_dir`` when ready, else ``building`` (the folder a running build will fill),
    else ``failure`` (why the build this clone links to did not finish), else nothing at all."""

    bin_dir: Path | None = None
    building: Path | None = None
    failure: str | None = None
    log: Path | None = None


def _lock_held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock when it was granted
    return False


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def locate(root: Path | None = None) -> Binaries:
    """What there is for the clone at ``root`` (default: the one this package is installed from)."""
    if os.environ.get(BIN_ENV):
        d = Path(os.environ[BIN_ENV])
        return Binaries(bin_dir=d if _has_binaries(d) else None)
    root = root or repo_root()
    link = root / ".cache" / "k8s" if root is not None else None
    if link is not None and link.is_symlink():  # this clone ran the setup: its build is the one to use
        dest = Path(os.readlink(link))
        if not dest.is_absolute():
            dest = link.parent / dest
        if (dest / "complete").is_file() and _has_binaries(dest / "bin"):
            return Binaries(bin_dir=dest / "bin")
        state = dest.parent / f"build-{dest.name}"
        log = state.with_name(state.name + ".log")
        if _lock_held(state.with_name(state.name + ".lock")):
            return Binaries(building=dest, log=log)
        failed = state.with_name(state.name + ".failed")
        reason = failed.read_text().strip() if failed.is_file() else "the build ended without finishing"
        return Binaries(failure=f"{reason} (log {log}):\n{_log_tail(log)}", log=log)
    if _has_binaries(CACHE_CURRENT / "bin"):
        return Binaries(bin_dir=CACHE_CURRENT / "bin")
    return Binaries()


def find_bin_dir() -> Path | None:
    """Where the binaries are now, or ``None`` (missing, or still being built)."""
    return locate().bin_dir


def wait_for_binaries(timeout: float | None = None, say: Callable[[str], None] = print,
                      poll: float = 5.0, root: Path | None = None) -> Path | None:
    """The binaries' folder, once a running build has finished; ``None`` when there is no build at all (then
    tests skip locally and fail in CI). Raises :class:`BuildFailed` when the build failed or did not finish
    within ``timeout`` seconds."""
    if timeout is None:
        timeout = float(os.environ.get(WAIT_ENV, "2700"))
    t0 = time.monotonic()
    told = -1.0
    while True:
        found = locate(root)
        if found.failure is not None:
            raise BuildFailed(f"building the Kubernetes binaries (.ci/setup/k8s.sh) failed: {found.failure}")
        if found.building is None:
            return found.bin_dir
        waited = time.monotonic() - t0
        if waited > timeout:
            raise BuildFailed(f"the Kubernetes binaries (.ci/setup/k8s.sh) were still building after {timeout:.0f}s "
                              f"(log {found.log}):\n{_log_tail(found.log) if found.log else ''}")
        if told < 0 or waited - told >= 60:
            told = waited
            last = _log_tail(found.log, 1) if found.log else ""
            say(f"waiting for the Kubernetes build to finish ({waited:.0f}s so far; log {found.log}: {last})")
        time.sleep(poll)
