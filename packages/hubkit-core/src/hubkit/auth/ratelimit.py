"""Login rate limiting: failed attempts per username and per client address in a sliding window.

State is kept **in process memory** (a dict of timestamp deques): cheap, no DB writes on the login path, and
lost on restart. With N hub worker processes each keeps its own counts, so the effective limit is up to N
times the configured one; that is documented in docs/security.md.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class LoginRateLimiter:
    limit: int
    window: float
    _fails: dict[str, deque[float]] = field(default_factory=dict)
    max_keys: int = 100_000

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            self._fails.pop(key, None)
        return q

    def retry_after(self, *keys: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed for all ``keys`` (0: allowed now)."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            q = self._prune(key, now)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.window - now)
        return wait

    def failed(self, *keys: str, now: float | None = None) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        if len(self._fails) >= self.max_keys:  # bound memory under a spray of random names
            for k in list(self._fails)[: self.max_keys // 10]:
                self._fails.pop(k, None)
        for key in keys:
            self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, user_key: str) -> None:
        self._fails.pop(user_key, None)
