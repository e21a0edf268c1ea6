"""The FIFO admission queue, alone and through the spawn engine."""

from __future__ import annotations

import asyncio

import pytest
from hubkit.interfaces import Phase
from hubkit.spawn.queue import AdmissionQueue
from hubkit.testing.plugin import make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def test_queue_is_fifo_and_positions_only_decrease():
    q = AdmissionQueue(2, update_interval=0)
    order: list[int] = []
    positions: dict[int, list[int]] = {i: [] for i in range(8)}
    gate = asyncio.Event()

    async def job(i: int) -> None:
        async def pos(p: int) -> None:
            positions[i].append(p)

        async with q.slot(pos):
            order.append(i)
            await gate.wait()

    tasks = []
    for i in range(8):
        tasks.append(asyncio.create_task(job(i)))
        await asyncio.sleep(0)  # arrival order = i
    await asyncio.sleep(0.01)
    assert q.active == 2 and q.waiting == 6
    gate.set()
    await asyncio.gather(*tasks)
    assert order == list(range(8))
    assert q.max_active_seen == 2
    for i in range(2, 8):
        assert positions[i][0] == i - 1
        assert positions[i] == sorted(positions[i], reverse=True) and len(set(positions[i])) == len(
            positions[i]
        )


async def test_cancelled_waiter_moves_others_forward():
    q = AdmissionQueue(1, update_interval=0)
    gate = asyncio.Event()
    seen: list[int] = []

    async def holder() -> None:
        async with q.slot():
            await gate.wait()

    async def waiter(record: bool) -> None:
        async def pos(p: int) -> None:
            if record:
                seen.append(p)

        async with q.slot(pos):
            pass

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    w1 = asyncio.create_task(waiter(False))
    await asyncio.sleep(0)
    w2 = asyncio.create_task(waiter(True))
    await asyncio.sleep(0.01)
    assert seen == [2]
    w1.cancel()
    await asyncio.sleep(0.01)
    assert seen == [2, 1]
    gate.set()
    await asyncio.gather(h, w2)
    assert q.active == 0 and q.waiting == 0


@pytest.fixture
def hub_settings(tmp_path):
    return make_settings(tmp_path / "hub", spawner={"concurrent_spawn_limit": 5}, **{})


async def test_fifty_spawns_limit_five(hub, make_user, hub_settings):
    hub.spawner.config = hub.spawner.config.model_copy(update={"start_delay": 0.5})
    users = [await make_user(f"user{i:02d}") for i in range(50)]
    ids = await asyncio.gather(*(hub.spawns.request_start(u) for u in users))
    results = await asyncio.gather(*(hub.spawns.wait(i, 60) for i in ids))
    assert results == ["ready"] * 50
    assert hub.spawner.max_starting <= 5
    assert hub.spawns.queue.max_active_seen == 5
    queued_somewhere = 0
    for spawn_id in ids:
        events = [ev async for _seq, ev in hub.spawns.events(spawn_id)]
        assert events[-1].phase is Phase.READY
        positions = [ev.queue_position for ev in events if ev.phase is Phase.QUEUED]
        assert all(p is not None and p >= 1 for p in positions)
        assert positions == sorted(positions, reverse=True)
        queued_somewhere += bool(positions)
    # everyone beyond the first five waited and was told where they stood
    assert queued_somewhere >= 45


async def test_one_bad_progress_event_does_not_fail_its_batch(hub, make_user):
    await make_user("batch")
    sid = await hub.spawns.request_start("batch")
    assert await hub.spawns.wait(sid, 10) == "ready"
    from hubkit.interfaces import ProgressEvent

    good = asyncio.ensure_future(hub.spawns.progress.emit(sid, ProgressEvent(Phase.STARTING, "fine")))
    bad = asyncio.ensure_future(hub.spawns.progress.emit(987654, ProgressEvent(Phase.STARTING, "no such spawn")))
    done = await asyncio.gather(good, bad, return_exceptions=True)
    assert isinstance(done[0], int) and isinstance(done[1], Exception)
    assert (await hub.spawns.progress.stored(sid))[-1][1].message == "fine"
