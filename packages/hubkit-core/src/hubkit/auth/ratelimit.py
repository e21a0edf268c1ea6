"""Login rate limiting: failed attempts per (user, client address), and per client address, in a window.

Buckets are keyed by the client address so that failures from one address never lock anyone out anywhere else:
ten wrong passwords for ``alice`` from one machine delay that machine's next tries for ``alice``, while alice
herself, logging in from her own address, is never refused. The per-address bucket (higher, many names) slows a
spray of guesses across accounts. The address is the one :mod:`hubkit.web.forwarded` trusts, never a header any
client can send. IPv6 clients count by their /64: one host usually holds a whole /64 and could otherwise take a
fresh address for every guess.

An attempt is counted *before* the password is checked (and taken back if it succeeds), so guesses sent in
parallel, which would all be checked before any failure was recorded, count as they arrive.

:class:`LoginRateLimiter` keeps its counts **in process memory** (timestamp deques): cheap, no DB writes on the
login path, lost on restart: the limiter of a single hub process. Hub replicas count together in the database
(:mod:`.pg_ratelimit`), with the same rules; the login service sees either through :class:`LoginLimiter`.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


class LoginLimiter(Protocol):
    """What the login service asks of a limiter."""

    async def attempt(self, user: str, addr: str) -> float:
        """Count an attempt of ``addr`` at ``user`` before its password is checked: 0 when it may go ahead, else
        the seconds until it may (nothing counted then)."""
        ...

    async def passed(self, user: str, addr: str) -> None:
        """The attempt logged in: the (user, address) count starts again, the address's count gets it back."""
        ...


def bucket_address(addr: str) -> str:
    """The bucket an address counts in: itself for IPv4 (and IPv4-mapped IPv6), its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr  # not an address (e.g. a unix socket peer): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def limited_buckets(user: str, addr: str, limit: int, per_address: int) -> list[tuple[tuple[str, str], int]]:
    """The counts an attempt of ``addr`` at ``user`` goes into, each with its limit: ``(user, bucket)`` and the
    address's own ``("", bucket)``; a limit of 0 is off."""
    addr = bucket_address(addr)
    keys = []
    if limit > 0:
        keys.append(((user, addr), limit))
    if per_address > 0:
        keys.append((("", addr), per_address))
    return keys


@dataclass
class LoginRateLimiter:
    limit: int  # failures per (user, address)
    window: float
    per_address: int = 0  # failures per address, any user (0: off)
    _fails: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    max_keys: int = 100_000

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            self._fails.pop(key, None)
        return q

    def _keys(self, user: str, addr: str) -> list[tuple[tuple[str, str], int]]:
        return limited_buckets(user, addr, self.limit, self.per_address)

    def retry_after(self, user: str, addr: str, *, now: float | None = None) -> float:
        """Seconds until ``addr`` may try ``user`` again (0: allowed now)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key, limit in self._keys(user, addr):
            q = self._prune(key, now)
            if len(q) >= limit:
                wait = max(wait, q[0] + self.window - now)
        return wait

    def failed(self, user: str, addr: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._fails) >= self.max_keys:  # bound memory under a spray of random names
            for k in list(self._fails)[: self.max_keys // 10]:
                self._fails.pop(k, None)
        for key, _limit in self._keys(user, addr):
            self._fails.setdefault(key, deque()).append(now)

    async def attempt(self, user: str, addr: str) -> float:
        wait = self.retry_after(user, addr)
        if wait <= 0:
            self.failed(user, addr)
        return wait

    async def passed(self, user: str, addr: str) -> None:
        self.succeeded(user, addr)

    def succeeded(self, user: str, addr: str) -> None:
        """A login went through: its (user, address) count starts again, and the attempt that was counted in
        advance (see :meth:`failed`) is taken back from the address's count."""
        addr = bucket_address(addr)
        self._fails.pop((user, addr), None)
        q = self._fails.get(("", addr))
        if q:
            q.pop()
