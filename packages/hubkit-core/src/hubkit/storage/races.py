"""Concurrent creates of the same row: the database's unique constraints decide, and the loser runs again.

Thirty browsers of one new user logging in at once, or two admins adding the same group, all read "no such
row" and insert; one insert wins and the rest hit a unique constraint. Running the losing unit of work once more
makes it see the winner's row, so it ends as the documented answer (409 for an explicit create, success for an
idempotent one) instead of a 500. Works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

T = TypeVar("T")


async def retry_unique(work: Callable[[], Awaitable[T]], *, attempts: int = 3) -> T:
    """Run ``work`` (which opens, uses and commits its own session); on a unique-constraint race run it
    again, up to ``attempts`` times in all."""
    for attempt in range(attempts):
        try:
            return await work()
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
