"""Concurrent creates of the same row: the database's unique constraints decide, and the loser runs again.

Thirty browsers of one new user logging in at once, or two admins adding the same group, all read "no such
row" and insert; one insert wins and the rest hit a unique constraint. Running the losing unit of work once more
makes it see the winner's row, so it ends as the documented answer (409 for an explicit create, success for an
idempotent one) instead of a 500. Works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .orm import User

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


async def claim_user(session: AsyncSession, name: str) -> bool:
    """Make ``name``'s row this transaction's first write, so that a start, a rename and a delete of one user
    run one after another instead of each acting on what it read before the other committed.

    PostgreSQL: the update takes the row lock and waits for a holder; after a wait it re-reads the row, so a user
    renamed or deleted meanwhile no longer matches and this returns False. SQLite: a first write takes the
    database's write lock before anything is read, so the transaction never acts on an older snapshot."""
    res = await session.execute(
        update(User)
        .where(User.name == name)
        .values(name=User.name)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
