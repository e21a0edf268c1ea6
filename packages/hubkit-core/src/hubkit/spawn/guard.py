"""The consecutive-failure guard: after ``consecutive_failure_limit`` failed spawns in a row, refuse new ones
for a cool-down, so a broken image or cluster does not eat every user's start attempt."""

from __future__ import annotations

import logging
import time

from ..errors import LimitReached

log = logging.getLogger("hubkit.spawn")
COOLDOWN = 60.0


class FailureGuard:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: off
        self.consecutive_failures = 0
        self._until = 0.0

    def check(self) -> None:
        if self.limit and self.consecutive_failures >= self.limit:
            if time.monotonic() < self._until:
                raise LimitReached(
                    f"spawning is paused after {self.consecutive_failures} failed spawns in a row; "
                    f"it resumes within {COOLDOWN:.0f} s (check the spawner's logs)"
                )
            self.consecutive_failures = 0

    def record(self, ok: bool) -> None:
        if ok:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.limit and self.consecutive_failures >= self.limit:
            self._until = time.monotonic() + COOLDOWN
            log.error("%d consecutive spawn failures: pausing spawns", self.consecutive_failures)
