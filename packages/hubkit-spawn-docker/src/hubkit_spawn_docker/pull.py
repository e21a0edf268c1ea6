"""Make sure an image is present, pulling it with progress events (layers and bytes) when needed.

The Docker SDK's pull stream is blocking, so it runs in a worker thread that hands throttled progress events
back to the event loop; a missing image and a failed pull end as :class:`SpawnFailed` with distinct codes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import docker
import docker.errors
from docker.utils import parse_repository_tag
from hubkit.errors import SpawnFailed
from hubkit.interfaces import Phase, ProgressEvent

Emit = Callable[[ProgressEvent], Coroutine[Any, Any, None]]

_MISSING_HINTS = ("not found", "manifest unknown", "repository does not exist", "no such image")
_EMIT_INTERVAL = 0.5


@dataclass
class PullProgress:
    """Per-layer byte counts from Docker's pull stream, summed for one progress line."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (current, total)
    done: set[str] = field(default_factory=set)

    def update(self, event: dict[str, Any]) -> bool:
        """Fold one stream event in; True when a layer finished (worth an immediate event)."""
        layer = event.get("id")
        status = str(event.get("status", ""))
        if not layer or status.startswith(("Pulling from", "Digest", "Status")):
            return False
        detail = event.get("progressDetail") or {}
        current, total = self.layers.get(layer, (0, 0))
        if status == "Downloading" and detail.get("total"):
            self.layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        elif status in ("Download complete", "Pull complete", "Already exists"):
            self.layers[layer] = (total or current, total or current)
            finished = layer not in self.done and status != "Download complete"
            if status != "Download complete":
                self.done.add(layer)
            return finished
        else:
            self.layers.setdefault(layer, (current, total))
        return False

    @property
    def bytes_done(self) -> int:
        return sum(c for c, _ in self.layers.values())

    @property
    def bytes_total(self) -> int:
        return sum(t for _, t in self.layers.values())

    def event(self, ref: str) -> ProgressEvent:
        total = self.bytes_total
        frac = self.bytes_done / total if total else 0.0
        mb = 1024 * 1024
        return ProgressEvent(
            phase=Phase.PULLING,
            message=(
                f"Pulling image {ref}: {len(self.done)}/{len(self.layers)} layers, "
                f"{self.bytes_done / mb:.1f}/{total / mb:.1f} MB"
            ),
            progress=10 + int(35 * frac),  # after the core's 10 %, before creating at 50 %
            detail={
                "image": ref,
                "layers_done": len(self.done),
                "layers_total": len(self.layers),
                "bytes_done": self.bytes_done,
                "bytes_total": total,
            },
        )


def _classify(ref: str, message: str) -> SpawnFailed:
    lowered = message.lower()
    if any(h in lowered for h in _MISSING_HINTS):
        return SpawnFailed(f"image {ref} does not exist: {message}", reason_code="image-missing")
    return SpawnFailed(f"pulling image {ref} failed: {message}", reason_code="image-pull-failed")


def _pull_blocking(client: docker.DockerClient, ref: str, emit: Emit, stop: threading.Event) -> None:
    repo, tag = parse_repository_tag(ref)
    progress = PullProgress()
    last = 0.0
    try:
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if stop.is_set():  # the spawn was cancelled (e.g. start_timeout): stop reading, report nothing
                return
            if "error" in event:
                raise _classify(ref, str(event.get("error")))
            finished = progress.update(event)
            now = time.monotonic()
            if progress.layers and (finished or now - last >= _EMIT_INTERVAL):
                last = now
                anyio.from_thread.run(emit, progress.event(ref))
    except docker.errors.APIError as exc:
        raise _classify(ref, str(exc.explanation or exc)) from None
    except docker.errors.DockerException as exc:
        raise _classify(ref, str(exc)) from None
    if progress.layers and not stop.is_set():
        anyio.from_thread.run(emit, progress.event(ref))


async def image_present(client: docker.DockerClient, ref: str) -> bool:
    def check() -> bool:
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    return await anyio.to_thread.run_sync(check)


async def ensure_image(client: docker.DockerClient, ref: str, policy: str, emit: Emit) -> None:
    """Make ``ref`` available locally according to ``policy`` ("if-missing", "always", "never")."""
    if policy != "always" and await image_present(client, ref):
        return
    if policy == "never":
        raise SpawnFailed(
            f"image {ref} is not on this Docker host and pull_policy is 'never'", reason_code="image-missing"
        )
    await emit(
        ProgressEvent(phase=Phase.PULLING, message=f"Pulling image {ref}", progress=10, detail={"image": ref})
    )
    stop = threading.Event()
    try:
        # Abandoned on cancel, so a slow pull cannot hold a spawn past the core's start_timeout.
        await anyio.to_thread.run_sync(_pull_blocking, client, ref, emit, stop, abandon_on_cancel=True)
    finally:
        stop.set()
    if not await image_present(client, ref):
        raise SpawnFailed(f"image {ref} is still missing after a pull", reason_code="image-missing")
