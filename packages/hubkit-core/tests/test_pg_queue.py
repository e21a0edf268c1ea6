"""The admission queue shared by hub replicas (:mod:`hubkit.spawn.pg_queue`), on a real PostgreSQL database: two
queues in this process stand for two replicas, each with its own storage (engine, change feed) and its own lease
connection, so every notice and lock goes through the server as between processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hubkit.runtime.leases import PgLeadership
from hubkit.spawn.pg_queue import PgAdmission
from hubkit.storage import migrate
from hubkit.storage.access import Storage
from sqlalchemy import text

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


class Replica:
    def __init__(self, url: str, limit: int, tmp: Any) -> None:
        self.storage = Storage.open(url, str(tmp))
        self.leases = PgLeadership(self.storage.engine.url)
        self.queue = PgAdmission(self.storage, self.leases, limit)

    async def start(self) -> None:
        await self.storage.listen()
        await self.leases.ready()

    async def close(self) -> None:
        await self.queue.close()
        await self.leases.close()
        await self.storage.dispose()


@pytest.fixture
async def pair(postgres_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    made: list[Replica] = []

    async def make(limit: int) -> tuple[Replica, Replica]:
        a, b = Replica(postgres_url, limit, tmp_path), Replica(postgres_url, limit, tmp_path)
        await migrate.upgrade(a.storage.engine)
        for r in (a, b):
            await r.start()
            made.append(r)
        return a, b

    yield make
    for r in made:
        await r.close()


async def until(check: Callable[[], Awaitable[bool]], limit: float = 10) -> float:
    """Seconds until ``await check()`` is true (polled every 10 ms); fails after ``limit``."""
    t0 = time.monotonic()
    for _ in range(int(limit / 0.01)):
        if await check():
            return time.monotonic() - t0
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {limit}s")


def count(r: Replica, op: Callable[[int], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return op(await rows(r))

    return check


async def seen_is(seen: list[int], want: list[int]) -> bool:
    return seen == want


async def rows(r: Replica) -> int:
    async with r.storage.session() as s:
        return int((await s.execute(text("SELECT count(*) FROM spawn_queue"))).scalar_one())


async def test_limit_and_fifo_hold_across_two_replicas_and_positions_only_decrease(pair: Any) -> None:
    a, b = await pair(3)
    active = 0
    max_active = 0
    order: list[int] = []
    positions: dict[int, list[int]] = {}
    arrived: dict[int, asyncio.Event] = {}

    async def job(i: int, q: PgAdmission) -> None:
        async def pos(p: int) -> None:
            positions[i].append(p)
            arrived[i].set()

        nonlocal active, max_active
        async with q.slot(pos):
            arrived[i].set()
            order.append(i)
            active += 1
            max_active = max(max_active, active)
            await asyncio.sleep(0.3)
            active -= 1

    tasks = []
    for i in range(16):  # alternately through each replica, each arriving once the one before is in the queue
        positions[i], arrived[i] = [], asyncio.Event()
        tasks.append(asyncio.create_task(job(i, (a, b)[i % 2].queue)))
        await asyncio.wait_for(arrived[i].wait(), 10)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)

    assert max_active == 3
    # who arrived earlier entered no later than 50 ms after a later arrival: admission is FIFO in the database,
    # and a replica hears of its waiter's admission through a notice (tens of ms)
    entered = {i: n for n, i in enumerate(order)}
    assert sorted(order) == list(range(16))
    assert all(entered[i] < entered[j] + 3 for i in range(16) for j in range(i + 1, 16)), order
    for i in range(3, 16):
        assert positions[i][0] == i - 2, (i, positions[i])  # 3 admitted, then 1, 2, ... in arrival order
        assert positions[i] == sorted(positions[i], reverse=True) and len(set(positions[i])) == len(positions[i])
    assert await rows(a) == 0
    stats = [r.queue.stats for r in (a, b)]
    admissions = sum(s.admissions for s in stats)
    statements = sum(s.statements for s in stats)
    print(f"\n16 admissions over 2 replicas, limit 3: {statements} statements ({statements / admissions:.1f} per "
          f"admission, BEGIN/COMMIT included), {sum(s.transactions for s in stats)} transactions, "
          f"{sum(s.passes for s in stats)} waiting-side passes")
    assert admissions == 16
    assert statements / admissions < 20  # no polling per waiter: a handful of statements per admission


async def test_limit_one_admits_in_arrival_order_across_replicas(pair: Any) -> None:
    a, b = await pair(1)
    order: list[int] = []
    gate = asyncio.Event()
    arrived = [asyncio.Event() for _ in range(8)]

    async def job(i: int, q: PgAdmission) -> None:
        async def pos(_p: int) -> None:
            arrived[i].set()

        async with q.slot(pos):
            arrived[i].set()
            order.append(i)
            await gate.wait()
            await asyncio.sleep(0.05)

    tasks = []
    for i in range(8):
        tasks.append(asyncio.create_task(job(i, (b, a)[i % 2].queue)))
        await asyncio.wait_for(arrived[i].wait(), 10)
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert order == list(range(8))


async def test_a_cancelled_waiter_leaves_at_once(pair: Any) -> None:
    a, b = await pair(1)
    gate = asyncio.Event()
    seen: list[int] = []

    async def holder() -> None:
        async with a.queue.slot():
            await gate.wait()

    async def waiter(q: PgAdmission, record: list[int] | None) -> None:
        async def pos(p: int) -> None:
            if record is not None:
                record.append(p)

        async with q.slot(pos):
            pass

    h = asyncio.create_task(holder())
    await until(count(a, lambda n: n >= 1))
    first = asyncio.create_task(waiter(b.queue, None))
    await until(count(a, lambda n: n >= 2))
    second = asyncio.create_task(waiter(a.queue, seen))
    await until(lambda: seen_is(seen, [2]))
    first.cancel()
    left = await until(count(a, lambda n: n == 2))  # the cancelled row is gone at once
    await until(lambda: seen_is(seen, [2, 1]), 5)  # ... and the one behind it moved up (a notice from b told a)
    assert left < 0.5, left
    gate.set()
    await asyncio.wait_for(asyncio.gather(h, second), 10)
    assert await rows(a) == 0


async def test_the_places_of_a_replica_that_died_are_freed(pair: Any) -> None:
    a, b = await pair(2)
    forever = asyncio.Event()
    admitted: list[str] = []

    async def job(name: str, q: PgAdmission) -> None:
        async with q.slot():
            admitted.append(name)
            await forever.wait()

    held = [asyncio.create_task(job(f"a{i}", a.queue)) for i in range(3)]  # a holds both slots, one a-waiter
    await until(count(a, lambda n: n >= 3))
    waiting = [asyncio.create_task(job(f"b{i}", b.queue)) for i in range(2)]
    await until(count(a, lambda n: n >= 5))
    assert len(admitted) == 2 and all(n.startswith("a") for n in admitted)  # a's three joined in any order

    await a.leases.close()  # a's lease ends as when its process dies: its rows now belong to nobody
    took = await until(lambda: seen_is([len(admitted)], [4]))
    assert sorted(admitted[2:]) == ["b0", "b1"]  # b's waiters, not a's dead one
    assert b.queue.stats.swept == 3
    print(f"\nplaces of a dead replica freed after {took:.2f} s")
    for t in held + waiting:
        t.cancel()
    await asyncio.gather(*held, *waiting, return_exceptions=True)
