"""Run a coroutine function over many items with bounded concurrency (a fixed pool of workers, so 10,000
items cost 10,000 awaits, not 10,000 tasks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def bounded_each(items: Iterable[T], fn: Callable[[T], Awaitable[None]], concurrency: int) -> None:
    it = iter(items)

    async def worker() -> None:
        for item in it:  # a shared iterator: each item goes to exactly one worker
            await fn(item)
            await asyncio.sleep(0)  # let requests in between, even when fn never had to wait

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
