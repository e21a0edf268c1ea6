"""The login rate limit of hub replicas: every replica counts in ``login_failures`` (PostgreSQL), so N replicas
behind one proxy allow no more guesses than one hub would (each counting in its own memory would allow N times
as many). Same buckets and rules as :mod:`.ratelimit`; times are the database's clock, so replicas on machines
whose clocks differ still agree.

One attempt is one short transaction: a transaction-level advisory lock per bucket (two attempts on one bucket,
on any replica, are counted one after the other, as parallel guesses must be), a count over the window, and the
inserts. Rows older than the window are deleted by the bucket's own next attempt, and every ``prune_every``
attempts of a process for all buckets.
"""

from __future__ import annotations

from sqlalchemy import text

from ..storage.access import Storage
from ..storage.locks import LOGIN_LOCKS
from .ratelimit import limited_buckets

_LOCK = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:bucket))")
_WINDOW = "timezone('utc', now()) - make_interval(secs => :window)"
_FORGET_OLD = text(f"DELETE FROM login_failures WHERE bucket = :bucket AND at <= {_WINDOW}")
# how many attempts the window holds, and seconds until its oldest leaves it
_COUNT = text(
    "SELECT count(*), coalesce(extract(epoch FROM min(at) + make_interval(secs => :window) "
    "- timezone('utc', now())), 0) FROM login_failures WHERE bucket = :bucket"
)
_COUNT_ATTEMPT = text("INSERT INTO login_failures (bucket, at) VALUES (:bucket, timezone('utc', now()))")
_PASSED = text("DELETE FROM login_failures WHERE bucket = :bucket")
_GIVE_BACK = text(
    "DELETE FROM login_failures WHERE id = (SELECT max(id) FROM login_failures WHERE bucket = :bucket)"
)
_PRUNE = text(f"DELETE FROM login_failures WHERE at <= {_WINDOW}")


class SharedLoginRateLimiter:
    """:class:`~.ratelimit.LoginLimiter` over the database (PostgreSQL only: it uses advisory locks)."""

    def __init__(
        self, storage: Storage, limit: int, window: float, per_address: int = 0, prune_every: int = 500
    ) -> None:
        self.storage = storage
        self.limit = limit
        self.window = float(window)
        self.per_address = per_address
        self.prune_every = prune_every
        self._attempts = 0

    def _buckets(self, user: str, addr: str) -> list[tuple[str, int]]:
        """:func:`~.ratelimit.limited_buckets` as row keys: ``u <address> <name>``, ``a <address>``."""
        return [
            (f"u {a} {u}" if u else f"a {a}", limit)
            for (u, a), limit in limited_buckets(user, addr, self.limit, self.per_address)
        ]

    async def attempt(self, user: str, addr: str) -> float:
        buckets = self._buckets(user, addr)
        if not buckets:
            return 0.0
        self._attempts += 1
        wait = 0.0
        async with self.storage.tx() as s:
            for bucket, _limit in sorted(buckets):  # one lock order everywhere: no deadlock between attempts
                await s.execute(_LOCK, {"cls": LOGIN_LOCKS, "bucket": bucket})
            for bucket, limit in buckets:
                await s.execute(_FORGET_OLD, {"bucket": bucket, "window": self.window})
                count, left = (await s.execute(_COUNT, {"bucket": bucket, "window": self.window})).one()
                if count >= limit:
                    wait = max(wait, float(left), 0.001)
            if wait == 0.0:
                for bucket, _limit in buckets:
                    await s.execute(_COUNT_ATTEMPT, {"bucket": bucket})
            if self._attempts % self.prune_every == 0:
                await s.execute(_PRUNE, {"window": self.window})
            await s.commit()
        return wait

    async def passed(self, user: str, addr: str) -> None:
        async with self.storage.tx() as s:
            for bucket, _limit in self._buckets(user, addr):
                # the (user, address) count starts again; the address's gets back the attempt counted in advance
                await s.execute(_PASSED if bucket.startswith("u ") else _GIVE_BACK, {"bucket": bucket})
            await s.commit()
