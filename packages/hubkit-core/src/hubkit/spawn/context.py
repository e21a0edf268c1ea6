"""``Spawning``: everything the spawn modules (engine, stopping, adoption, polling) work with, as one value.

The engine builds it once; the other modules receive it and never import the engine, so there are no import
cycles and each module can be read (and replaced) alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..interfaces import ProgressEvent
from ..storage.access import Storage
from .guard import FailureGuard
from .inflight import InFlight
from .owners import Owners
from .parts import SpawnParts, SpawnPolicy
from .progress import ProgressStore
from .queue import Admission


@dataclass(frozen=True)
class Spawning:
    policy: SpawnPolicy
    storage: Storage
    parts: SpawnParts
    admission: Admission
    progress: ProgressStore
    guard: FailureGuard
    inflight: InFlight
    owners: Owners

    async def emit(self, spawn_id: int, event: ProgressEvent) -> None:
        await self.progress.emit(spawn_id, event)
